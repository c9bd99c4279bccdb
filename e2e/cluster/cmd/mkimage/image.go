package main

import (
	"archive/tar"
	"bytes"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The users the base has, as distroless/static has them.
const (
	passwdFile = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	groupFile  = "root:x:0:\nnonroot:x:65532:\n"
)

// epoch is every timestamp in the image: the same files give the same digest.
var epoch = time.Unix(0, 0).UTC()

// imageSpec is the image's config, the same for every platform.
type imageSpec struct {
	entrypoint, cmd, env []string
	user                 string
	labels               map[string]string
}

type fileEntry struct {
	data []byte
	mode int64
}

func baseFiles() map[string]fileEntry {
	return map[string]fileEntry{
		"/etc/passwd": {data: []byte(passwdFile), mode: 0o644},
		"/etc/group":  {data: []byte(groupFile), mode: 0o644},
	}
}

// buildImage makes the image of one platform: files as one layer, and the
// config. It keeps go-containerregistry's Docker media types (those of
// empty.Image), which a docker-archive cannot tell from its own, so the
// image --out writes has the digest the index lists.
func buildImage(files map[string]fileEntry, p *v1.Platform, spec imageSpec) (v1.Image, error) {
	layerTar, err := buildLayer(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfgFile, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cfgFile.DeepCopy()
	cfg.OS = p.OS
	cfg.Architecture = p.Architecture
	cfg.Variant = p.Variant
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = spec.entrypoint
	cfg.Config.Cmd = spec.cmd
	cfg.Config.User = spec.user
	cfg.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, spec.env...)
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = spec.labels
	return mutate.ConfigFile(img, cfg)
}

// buildLayer writes files, and every parent directory, as one tar layer
// owned by root with a fixed modification time.
func buildLayer(files map[string]fileEntry) ([]byte, error) {
	dirs := map[string]bool{}
	for p := range files {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names) // parents sort before children
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		rel := strings.TrimPrefix(n, "/")
		if dirs[n] {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
			continue
		}
		f := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
