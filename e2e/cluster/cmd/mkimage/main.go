// Command mkimage builds a container image from static binaries, for one
// platform or several, with no Docker engine and no registry: the image is
// assembled with go-containerregistry from files on disk, on an empty base.
// It writes
//
//   - --layout DIR: an OCI image layout holding one image index (a manifest
//     per platform), tagged in index.json (org.opencontainers.image.ref.name),
//     which `crane push DIR REF` or `skopeo copy --all oci:DIR:TAG ...` push;
//   - --out FILE: a docker-archive tarball (what `docker save` writes;
//     `docker load`, `ctr images import` and `podman load` read it) of the
//     image for one platform (--out-platform), the very image of the index.
//
// For example, what `make image` runs:
//
//	mkimage --tag simple-device-plugin:v1.2.0 --layout bin/image --out sdp.tar \
//	  --platform linux/amd64 --platform linux/arm64 \
//	  --add 'bin/{os}-{arch}/simple-device-plugin=/usr/local/bin/simple-device-plugin' \
//	  --entrypoint /usr/local/bin/simple-device-plugin --user 65532:65532 \
//	  --label org.opencontainers.image.version=v1.2.0
//
// Each image mirrors the Dockerfile's: the binary on a base that has nothing
// but /etc/passwd and /etc/group (root and nonroot, as distroless has), one
// layer, fixed timestamps so the same binaries give the same digests.
// Labels go into every image's config and, as annotations, onto the index.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// hostPlatform is the platform of this machine's container runtime: the
// default platform, and the one --out writes.
var hostPlatform = "linux/" + runtime.GOARCH

// Main parses the flags and writes the image.
func Main(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var (
		adds, platforms, entrypoint, cmd, env, labels listFlag
		tag                                           = fs.String("tag", "", "image reference (required), e.g. simple-device-plugin:v1.2.0")
		layoutDir                                     = fs.String("layout", "", "write the image index as an OCI image layout into this directory (replaced if it holds one)")
		out                                           = fs.String("out", "", "write the image for --out-platform as a docker-archive tarball")
		outPlatform                                   = fs.String("out-platform", hostPlatform, "the platform --out writes")
		user                                          = fs.String("user", "", "user[:group] the image runs as")
	)
	fs.Var(&platforms, "platform", "OS/ARCH to build an image for (repeatable; default "+hostPlatform+")")
	fs.Var(&adds, "add", "SRC=DEST: copy file SRC to absolute path DEST in the image, mode 0755; {os} and {arch} in SRC become the platform's (repeatable)")
	fs.Var(&entrypoint, "entrypoint", "entrypoint argument (repeatable)")
	fs.Var(&cmd, "cmd", "cmd argument (repeatable)")
	fs.Var(&env, "env", "NAME=VALUE (repeatable)")
	fs.Var(&labels, "label", "KEY=VALUE: a label of every image, and an annotation of the index (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tag == "" || len(adds) == 0 || (*layoutDir == "" && *out == "") {
		return errors.New("--tag, at least one --add, and --layout or --out (or both) are required")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", *tag, err)
	}
	if len(platforms) == 0 {
		platforms = listFlag{hostPlatform}
	}
	labelMap, err := keyValues("--label", labels)
	if err != nil {
		return err
	}
	spec := imageSpec{entrypoint: entrypoint, cmd: cmd, env: env, user: *user, labels: labelMap}

	var built []platformImage
	for _, p := range platforms {
		platform, err := v1.ParsePlatform(p)
		if err != nil || platform.OS == "" || platform.Architecture == "" {
			return fmt.Errorf("--platform %q: want OS/ARCH, e.g. linux/arm64", p)
		}
		files, err := platformFiles(adds, platform)
		if err != nil {
			return err
		}
		img, err := buildImage(files, platform, spec)
		if err != nil {
			return fmt.Errorf("image for %s: %w", p, err)
		}
		built = append(built, platformImage{platform: platform, image: img})
	}
	if *layoutDir != "" {
		digest, err := writeLayout(*layoutDir, ref, built, labelMap)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s index %s (%s)\n", *layoutDir, *tag, digest, strings.Join(platforms, ", "))
	}
	if *out != "" {
		digest, err := writeArchive(*out, ref, built, *outPlatform)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s image %s (%s)\n", *out, *tag, digest, *outPlatform)
	}
	return nil
}

// platformFiles reads the --add files for one platform, with the users of
// the base.
func platformFiles(adds []string, p *v1.Platform) (map[string]fileEntry, error) {
	files := baseFiles()
	for _, a := range adds {
		src, dest, ok := strings.Cut(a, "=")
		if !ok || !path.IsAbs(dest) {
			return nil, fmt.Errorf("--add %q: want SRC=/absolute/dest", a)
		}
		src = strings.NewReplacer("{os}", p.OS, "{arch}", p.Architecture).Replace(src)
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("--add for %s: %w", p, err)
		}
		files[path.Clean(dest)] = fileEntry{data: data, mode: 0o755}
	}
	return files, nil
}

// keyValues splits KEY=VALUE flags.
func keyValues(flagName string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}
