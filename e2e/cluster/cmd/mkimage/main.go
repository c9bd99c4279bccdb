// Command mkimage builds a container image from static binaries and writes
// it as a docker-archive tarball (what `docker save` writes; `docker load`,
// `ctr images import` and `podman load` read it). No Docker engine and no
// registry: the image is assembled with go-containerregistry from files on
// disk, on an empty base.
//
//	mkimage --tag simple-device-plugin:dev --out sdp.tar \
//	  --add bin/simple-device-plugin=/usr/local/bin/simple-device-plugin \
//	  --entrypoint /usr/local/bin/simple-device-plugin --user 65532:65532
//
// The image mirrors the Dockerfile's: the binary on a base that has nothing
// but /etc/passwd and /etc/group (root and nonroot, as distroless has), one
// layer, fixed timestamps so the same binary gives the same image digest.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// The users the base has, as distroless/static has them.
const (
	passwdFile = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	groupFile  = "root:x:0:\nnonroot:x:65532:\n"
)

func main() {
	if err := Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// Main parses the flags and writes the image.
func Main(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var (
		adds, entrypoint, cmd, env, labels listFlag
		tag                                = fs.String("tag", "", "image reference written into the archive (required), e.g. simple-device-plugin:dev")
		out                                = fs.String("out", "", "output tarball (required)")
		user                               = fs.String("user", "", "user[:group] the image runs as")
		arch                               = fs.String("arch", runtime.GOARCH, "image architecture")
	)
	fs.Var(&adds, "add", "SRC=DEST: copy file SRC to absolute path DEST in the image, mode 0755 (repeatable)")
	fs.Var(&entrypoint, "entrypoint", "entrypoint argument (repeatable)")
	fs.Var(&cmd, "cmd", "cmd argument (repeatable)")
	fs.Var(&env, "env", "NAME=VALUE (repeatable)")
	fs.Var(&labels, "label", "KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tag == "" || *out == "" || len(adds) == 0 {
		return errors.New("--tag, --out and at least one --add are required")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", *tag, err)
	}
	files := map[string]fileEntry{
		"/etc/passwd": {data: []byte(passwdFile), mode: 0o644},
		"/etc/group":  {data: []byte(groupFile), mode: 0o644},
	}
	for _, a := range adds {
		src, dest, ok := strings.Cut(a, "=")
		if !ok || !path.IsAbs(dest) {
			return fmt.Errorf("--add %q: want SRC=/absolute/dest", a)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		files[path.Clean(dest)] = fileEntry{data: data, mode: 0o755}
	}
	layerTar, err := buildLayer(files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfgFile, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg := cfgFile.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = *arch
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.Cmd = cmd
	cfg.Config.User = *user
	cfg.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...)
	cfg.Config.WorkingDir = "/"
	if len(labels) > 0 {
		cfg.Config.Labels = map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			cfg.Config.Labels[k] = v
		}
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", *out, ref.Name(), digest)
	return nil
}

type fileEntry struct {
	data []byte
	mode int64
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
	epoch := time.Unix(0, 0).UTC()
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
