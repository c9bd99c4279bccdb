package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// refNameAnnotation tags the index in the layout's index.json, with the
// tag alone as the OCI convention has it (skopeo's oci:DIR:TAG looks it up).
const refNameAnnotation = "org.opencontainers.image.ref.name"

type platformImage struct {
	platform *v1.Platform
	image    v1.Image
}

// writeLayout writes the images as one OCI image index, annotated with the
// labels, into an OCI image layout at dir whose index.json lists that
// index alone, tagged ref. It returns the index's digest.
func writeLayout(dir string, ref name.Tag, images []platformImage, annotations map[string]string) (v1.Hash, error) {
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, pi := range images {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        pi.image,
			Descriptor: v1.Descriptor{Platform: pi.platform},
		})
	}
	if len(annotations) > 0 {
		idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	}
	if err := clearLayout(dir); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("write the OCI layout %s: %w", dir, err)
	}
	tagged := layout.WithAnnotations(map[string]string{refNameAnnotation: ref.TagStr()})
	if err := p.AppendIndex(idx, tagged); err != nil {
		return v1.Hash{}, fmt.Errorf("write the index into %s: %w", dir, err)
	}
	return idx.Digest()
}

// clearLayout removes an earlier layout at dir, so that no blob of an
// older build stays behind; anything else there is left alone, and an
// error.
func clearLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--layout %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("--layout %s: not empty and not an OCI image layout; not replacing it", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the earlier layout: %w", err)
	}
	return nil
}

// writeArchive writes the image of platform as a docker-archive tarball
// tagged ref, and returns the image's digest.
func writeArchive(file string, ref name.Tag, images []platformImage, platform string) (v1.Hash, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("--out-platform %q: %w", platform, err)
	}
	for _, pi := range images {
		if pi.platform.Equals(*want) {
			if err := tarball.WriteToFile(file, ref, pi.image); err != nil {
				return v1.Hash{}, fmt.Errorf("write %s: %w", file, err)
			}
			return pi.image.Digest()
		}
	}
	return v1.Hash{}, fmt.Errorf("--out: no image for %s, the --out-platform (add --platform %s)", platform, platform)
}
