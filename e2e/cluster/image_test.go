package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const pluginPath = "/usr/local/bin/simple-device-plugin"

// TestImageIndex runs `make image` into a temporary directory and reads
// what it wrote back: an OCI layout holding one index, tagged, with an
// image per platform whose config and binary are that platform's, and a
// docker-archive of this machine's image, the very image of the index.
// Built twice, it has the same digest.
func TestImageIndex(t *testing.T) {
	_, err := exec.LookPath("make")
	require(t, err == nil, "no make in PATH")
	const (
		version = "v0.0.0-imagetest"
		source  = "https://example.com/simple-device-plugin"
	)
	revision := "unknown"
	if out, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output(); err == nil {
		revision = strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	makeImage := func(layoutDir, tarPath string) {
		mustRun(context.Background(), t, "make", "-C", repoRoot, "image",
			"VERSION="+version, "SOURCE="+source, "IMAGE=simple-device-plugin:"+version,
			"IMAGE_BIN_DIR="+filepath.Join(dir, "bin"), "IMAGE_DIR="+layoutDir, "IMAGE_TAR="+tarPath)
	}
	layoutDir, tarPath := filepath.Join(dir, "image"), filepath.Join(dir, "image.tar")
	makeImage(layoutDir, tarPath)

	idx, entry := readLayout(t, layoutDir)
	if entry.Annotations["org.opencontainers.image.ref.name"] != version {
		t.Errorf("index.json: ref.name %q, want the tag %q", entry.Annotations["org.opencontainers.image.ref.name"], version)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":    "simple-device-plugin",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.source":   source,
	}
	for k, v := range labels {
		if im.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, im.Annotations[k], v)
		}
	}

	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	var platforms []string
	for _, desc := range im.Manifests {
		if desc.Platform == nil {
			t.Fatalf("index entry %s has no platform", desc.Digest)
		}
		p := desc.Platform.String()
		platforms = append(platforms, p)
		t.Run(strings.ReplaceAll(p, "/", "-"), func(t *testing.T) {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OS != desc.Platform.OS || cfg.Architecture != desc.Platform.Architecture {
				t.Errorf("config says %s/%s, the index %s", cfg.OS, cfg.Architecture, p)
			}
			for k, v := range labels {
				if cfg.Config.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, cfg.Config.Labels[k], v)
				}
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{pluginPath}) {
				t.Errorf("entrypoint %q, want [%s]", cfg.Config.Entrypoint, pluginPath)
			}
			if cfg.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532", cfg.Config.User)
			}
			binary := fileInImage(t, img, pluginPath)
			f, err := elf.NewFile(bytes.NewReader(binary))
			if err != nil {
				t.Fatalf("%s: not an ELF binary: %v", pluginPath, err)
			}
			if want, ok := machines[desc.Platform.Architecture]; !ok || f.Machine != want {
				t.Errorf("%s is built for %s, want %s", pluginPath, f.Machine, want)
			}
			if !bytes.Contains(binary, []byte(version)) {
				t.Errorf("%s does not hold its version %q (-ldflags -X)", pluginPath, version)
			}
		})
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index platforms %v, want linux/amd64 and linux/arm64", platforms)
	}

	// The docker-archive: this machine's image of the index.
	archived, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := archived.Digest()
	if err != nil {
		t.Fatal(err)
	}
	host := "linux/" + runtime.GOARCH
	want := indexDigest(t, im, host)
	if got != want {
		t.Errorf("%s holds image %s; the index's %s image is %s", filepath.Base(tarPath), got, host, want)
	}

	// Deterministic: the same binaries give the same index.
	makeImage(filepath.Join(dir, "again"), filepath.Join(dir, "again.tar"))
	again, _ := readLayout(t, filepath.Join(dir, "again"))
	d1, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := again.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("built twice, the index is %s then %s: not deterministic", d1, d2)
	}
}

// readLayout opens an OCI layout that must list one image index, and
// returns it with its entry in index.json.
func readLayout(t *testing.T, dir string) (v1.ImageIndex, v1.Descriptor) {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || !tm.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("%s/index.json lists %v, want one image index", dir, tm.Manifests)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx, tm.Manifests[0]
}

func indexDigest(t *testing.T, im *v1.IndexManifest, platform string) v1.Hash {
	t.Helper()
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.String() == platform {
			return d.Digest
		}
	}
	t.Fatalf("the index has no %s image", platform)
	return v1.Hash{}
}

// fileInImage returns the content of a regular file of the image.
func fileInImage(t *testing.T, img v1.Image, path string) []byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no %s in the image", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if "/"+strings.TrimPrefix(h.Name, "/") == path && h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s from the image: %v", path, err)
			}
			return data
		}
	}
}
