package discover

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestScan(t *testing.T) {
	sound := func(r *fakeRoot) {
		r.char("/dev/snd/controlC0", 116, 0)
		r.char("/dev/snd/pcmC0D0p", 116, 16)
		r.char("/dev/snd/pcmC0D0c", 116, 24)
		r.char("/dev/snd/controlC1", 116, 32)
		r.char("/dev/snd/pcmC1D0p", 116, 48)
		r.char("/dev/snd/timer", 116, 33)
		r.char("/dev/snd/seq/seq0", 116, 1)
		r.link("/dev/snd/by-path/pci-0000:00:1f.3", "../controlC0")
	}
	ttys := func(n int) func(r *fakeRoot) {
		return func(r *fakeRoot) {
			for i := range n {
				r.char("/dev/tty"+string(rune('A'+i)), 4, uint32(64+i))
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(r *fakeRoot)
		spec  Spec
		max   int
		want  Result
	}{
		{
			name: "plain glob",
			setup: func(r *fakeRoot) {
				r.char("/dev/ttyUSB0", 188, 0)
				r.char("/dev/ttyUSB1", 188, 1)
				r.char("/dev/null", 1, 3)
			},
			spec: Spec{Paths: []string{"/dev/ttyUSB*"}},
			want: Result{Devices: []Device{node("/dev/ttyUSB0", "dev:188:0"), node("/dev/ttyUSB1", "dev:188:1")}},
		},
		{
			name:  "no match",
			setup: func(r *fakeRoot) { r.char("/dev/null", 1, 3) },
			spec:  Spec{Paths: []string{"/dev/ttyUSB*", "/dev/ttyACM0"}},
		},
		{
			name:  "the pattern's directory does not exist",
			setup: func(r *fakeRoot) {},
			spec:  Spec{Paths: []string{"/dev/bus/usb/*/*"}},
		},
		{
			name: "glob in an intermediate component",
			setup: func(r *fakeRoot) {
				r.char("/dev/bus/usb/001/001", 189, 0)
				r.char("/dev/bus/usb/002/001", 189, 128)
				r.char("/dev/bus/usb/002/003", 189, 130)
				r.file("/dev/bus/usb/README", "")
			},
			spec: Spec{Paths: []string{"/dev/bus/usb/*/*"}},
			want: Result{Devices: []Device{
				node("/dev/bus/usb/001/001", "dev:189:0"),
				node("/dev/bus/usb/002/001", "dev:189:128"),
				node("/dev/bus/usb/002/003", "dev:189:130"),
			}},
		},
		{
			name: "not devices: regular file, named pipe, dangling symlinks",
			setup: func(r *fakeRoot) {
				r.file("/dev/ttyS0", "not a device")
				r.link("/dev/ttyS1", "ttyS9")
				r.link("/dev/ttyS2", "/dev/gone/ttyS2")
				r.char("/dev/ttyS3", 4, 67)
				if err := unix.Mkfifo(r.at("/dev/ttyS4"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			spec: Spec{Paths: []string{"/dev/ttyS*"}},
			want: Result{
				Devices: []Device{node("/dev/ttyS3", "dev:4:67")},
				Problems: []Problem{
					{"/dev/ttyS0", "a regular file, not a device node or directory"},
					{"/dev/ttyS1", "dangling symlink to ttyS9"},
					{"/dev/ttyS2", "dangling symlink to /dev/gone/ttyS2"},
					{"/dev/ttyS4", "a named pipe, not a device node or directory"},
				},
			},
		},
		{
			name: "symlinks resolve within the root",
			setup: func(r *fakeRoot) {
				r.char("/dev/ttyUSB0", 188, 0)
				r.char("/dev/ttyACM0", 166, 0)
				r.char("/dev/ttyACM1", 166, 1)
				r.char("/dev/ttyACM2", 166, 2)
				r.link("/dev/links/rel", "../ttyUSB0")
				r.link("/dev/links/abs", "/dev/ttyACM0")
				r.link("/dev/links/chain", "../alias")
				r.link("/dev/alias", "/dev/ttyACM2")
				// ".." stops at the root, as at the real "/".
				r.link("/dev/links/up", "../../../../../../../dev/ttyACM1")
				// Exists on the machine, not under the root.
				r.link("/dev/links/outside", "/proc/self/status")
				r.link("/dev/links/loop", "loop2")
				r.link("/dev/links/loop2", "loop")
				// A directory link with an absolute target.
				r.char("/realdev/ttyX", 240, 7)
				r.link("/dev/byname", "/realdev")
			},
			spec: Spec{Paths: []string{"/dev/links/*", "/dev/byname/*"}},
			want: Result{
				Devices: []Device{
					{Path: "/dev/byname/ttyX", Nodes: []Node{{"/dev/byname/ttyX", "/realdev/ttyX"}}, Identity: "dev:240:7"},
					{Path: "/dev/links/abs", Nodes: []Node{{"/dev/links/abs", "/dev/ttyACM0"}}, Identity: "dev:166:0"},
					{Path: "/dev/links/chain", Nodes: []Node{{"/dev/links/chain", "/dev/ttyACM2"}}, Identity: "dev:166:2"},
					{Path: "/dev/links/rel", Nodes: []Node{{"/dev/links/rel", "/dev/ttyUSB0"}}, Identity: "dev:188:0"},
					{Path: "/dev/links/up", Nodes: []Node{{"/dev/links/up", "/dev/ttyACM1"}}, Identity: "dev:166:1"},
				},
				Problems: []Problem{
					{"/dev/links/loop", "too many levels of symbolic links"},
					{"/dev/links/loop2", "too many levels of symbolic links"},
					{"/dev/links/outside", "dangling symlink to /proc/self/status"},
				},
			},
		},
		{
			name: "a directory match carries the nodes under it",
			setup: func(r *fakeRoot) {
				sound(r)
				r.file("/dev/empty/README", "")
				r.link("/dev/empty/null", "/dev/null")
			},
			spec: Spec{Paths: []string{"/dev/snd", "/dev/empty"}},
			want: Result{
				Devices: []Device{{Path: "/dev/snd", Identity: "dir:/dev/snd", Nodes: []Node{
					{"/dev/snd/controlC0", "/dev/snd/controlC0"},
					{"/dev/snd/controlC1", "/dev/snd/controlC1"},
					{"/dev/snd/pcmC0D0c", "/dev/snd/pcmC0D0c"},
					{"/dev/snd/pcmC0D0p", "/dev/snd/pcmC0D0p"},
					{"/dev/snd/pcmC1D0p", "/dev/snd/pcmC1D0p"},
					{"/dev/snd/seq/seq0", "/dev/snd/seq/seq0"},
					{"/dev/snd/timer", "/dev/snd/timer"},
				}}},
				Problems: []Problem{{"/dev/empty", "a directory with no device nodes under it"}},
			},
		},
		{
			name: "a directory reached through a symlink",
			setup: func(r *fakeRoot) {
				r.char("/dev/snd/controlC0", 116, 0)
				r.char("/dev/snd/pcmC0D0p", 116, 16)
				r.link("/dev/sound", "snd")
			},
			spec: Spec{Paths: []string{"/dev/sound"}},
			want: Result{Devices: []Device{{Path: "/dev/sound", Identity: "dir:/dev/sound", Nodes: []Node{
				{"/dev/sound/controlC0", "/dev/snd/controlC0"},
				{"/dev/sound/pcmC0D0p", "/dev/snd/pcmC0D0p"},
			}}}},
		},
		{
			name:  "groups by key",
			setup: sound,
			spec: Spec{Groups: &Groups{
				Key:   regexp.MustCompile(`C(\d+)`),
				Paths: []string{"/dev/snd/controlC*", "/dev/snd/pcmC*", "/dev/snd/timer"},
			}},
			want: Result{
				Devices: []Device{
					{Path: "/dev/snd/controlC0", Key: "0", Identity: "dev:116:0", Nodes: []Node{
						{"/dev/snd/controlC0", "/dev/snd/controlC0"},
						{"/dev/snd/pcmC0D0c", "/dev/snd/pcmC0D0c"},
						{"/dev/snd/pcmC0D0p", "/dev/snd/pcmC0D0p"},
					}},
					{Path: "/dev/snd/controlC1", Key: "1", Identity: "dev:116:32", Nodes: []Node{
						{"/dev/snd/controlC1", "/dev/snd/controlC1"},
						{"/dev/snd/pcmC1D0p", "/dev/snd/pcmC1D0p"},
					}},
				},
				Problems: []Problem{{"/dev/snd/timer", `the name does not match the group key C(\d+)`}},
			},
		},
		{
			name:  "groups: a key without a capture group is the whole match",
			setup: sound,
			spec: Spec{Groups: &Groups{
				Key:   regexp.MustCompile(`C\d+`),
				Paths: []string{"/dev/snd/controlC1", "/dev/snd/pcmC1*"},
			}},
			want: Result{Devices: []Device{{Path: "/dev/snd/controlC1", Key: "C1", Identity: "dev:116:32", Nodes: []Node{
				{"/dev/snd/controlC1", "/dev/snd/controlC1"},
				{"/dev/snd/pcmC1D0p", "/dev/snd/pcmC1D0p"},
			}}}},
		},
		{
			name:  "bound: the first max kept, the cut counted",
			setup: ttys(5),
			spec:  Spec{Paths: []string{"/dev/tty*"}},
			max:   3,
			want: Result{
				Devices:  []Device{node("/dev/ttyA", "dev:4:64"), node("/dev/ttyB", "dev:4:65"), node("/dev/ttyC", "dev:4:66")},
				Problems: []Problem{{"/dev/ttyD", "over the limit of 3: 2 left out, from this one on"}},
			},
		},
		{
			name:  "bound: exactly max is no problem",
			setup: ttys(3),
			spec:  Spec{Paths: []string{"/dev/tty*"}},
			max:   3,
			want:  Result{Devices: []Device{node("/dev/ttyA", "dev:4:64"), node("/dev/ttyB", "dev:4:65"), node("/dev/ttyC", "dev:4:66")}},
		},
		{
			name:  "bound: groups",
			setup: sound,
			spec:  Spec{Groups: &Groups{Key: regexp.MustCompile(`C(\d+)`), Paths: []string{"/dev/snd/controlC*"}}},
			max:   1,
			want: Result{
				Devices:  []Device{{Path: "/dev/snd/controlC0", Key: "0", Identity: "dev:116:0", Nodes: []Node{{"/dev/snd/controlC0", "/dev/snd/controlC0"}}}},
				Problems: []Problem{{"/dev/snd/controlC1", "over the limit of 1: 1 left out, from this one on"}},
			},
		},
		{
			name: "two paths to one node are one device",
			setup: func(r *fakeRoot) {
				r.char("/dev/ttyUSB0", 188, 0)
				r.char("/dev/ttyUSB1", 188, 1)
				r.link("/dev/serial/by-id/usb-FTDI_FT232R_A9X1-if00-port0", "../../ttyUSB0")
			},
			spec: Spec{Paths: []string{"/dev/ttyUSB*", "/dev/serial/by-id/*", "/dev/ttyUSB0"}},
			want: Result{Devices: []Device{
				{
					Path:     "/dev/serial/by-id/usb-FTDI_FT232R_A9X1-if00-port0",
					Nodes:    []Node{{"/dev/serial/by-id/usb-FTDI_FT232R_A9X1-if00-port0", "/dev/ttyUSB0"}},
					Identity: "by-id:usb-FTDI_FT232R_A9X1-if00-port0",
				},
				node("/dev/ttyUSB1", "dev:188:1"),
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t)
			tc.setup(r)
			checkResult(t, r.scan(tc.spec, tc.max), tc.want)
		})
	}
}

func TestScanUSB(t *testing.T) {
	r := newRoot(t)
	r.usbTTY("1-1", "0403", "6001", "A9X1", "ttyUSB0", 188, 0)
	r.usbTTY("1-2", "10c4", "ea60", "0001", "ttyUSB1", 188, 1)
	r.usbTTY("1-3", "1a86", "7523", "", "ttyUSB2", 188, 2)
	r.ttyIn("/sys/devices/platform/serial8250/tty/ttyS0", "ttyS0", 4, 64)

	ftdi := Device{Path: "/dev/ttyUSB0", Nodes: []Node{{"/dev/ttyUSB0", "/dev/ttyUSB0"}}, Identity: "usb:0403:6001:A9X1", Serial: "A9X1"}
	cp210x := Device{Path: "/dev/ttyUSB1", Nodes: []Node{{"/dev/ttyUSB1", "/dev/ttyUSB1"}}, Identity: "usb:10c4:ea60:0001", Serial: "0001"}
	ch340 := node("/dev/ttyUSB2", "dev:188:2") // no serial: no stable identity
	for _, tc := range []struct {
		name   string
		filter []USB
		want   []Device
	}{
		{"no filter", nil, []Device{node("/dev/ttyS0", "dev:4:64"), ftdi, cp210x, ch340}},
		{"vendor and product", []USB{{Vendor: "0403", Product: "6001"}}, []Device{ftdi}},
		{"IDs compare case-insensitively", []USB{{Vendor: "10C4", Product: "EA60"}}, []Device{cp210x}},
		{"serial matches", []USB{{Vendor: "0403", Product: "6001", Serial: "A9X1"}}, []Device{ftdi}},
		{"serial differs", []USB{{Vendor: "0403", Product: "6001", Serial: "B0000"}}, nil},
		{"serial compares exactly", []USB{{Vendor: "0403", Product: "6001", Serial: "a9x1"}}, nil},
		{"a serial asked of a device without one", []USB{{Vendor: "1a86", Product: "7523", Serial: "1"}}, nil},
		{"any of several", []USB{{Vendor: "1a86", Product: "7523"}, {Vendor: "0403", Product: "6001"}}, []Device{ftdi, ch340}},
		{"no such device", []USB{{Vendor: "dead", Product: "beef"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A match without a USB parent (ttyS0) is filtered out quietly.
			checkResult(t, r.scan(Spec{Paths: []string{"/dev/tty*"}, USB: tc.filter}, 0), Result{Devices: tc.want})
		})
	}
}

func TestScanUSBDirectoryAndGroups(t *testing.T) {
	r := newRoot(t)
	usbDir := "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-4"
	r.file(usbDir+"/idVendor", "0d8c\n")
	r.file(usbDir+"/idProduct", "0014\n")
	r.file(usbDir+"/serial", "SND1\n")
	for _, n := range []struct {
		name  string
		minor uint32
	}{{"controlC1", 32}, {"pcmC1D0p", 48}} {
		sysDir := usbDir + "/1-4:1.0/sound/card1/" + n.name
		r.file(sysDir+"/dev", "")
		r.link(fmt.Sprintf("/sys/dev/char/116:%d", n.minor), "../.."+strings.TrimPrefix(sysDir, "/sys"))
		r.char("/dev/snd/"+n.name, 116, n.minor)
	}
	r.char("/dev/snd/controlC0", 116, 0) // on PCI: no USB parent
	r.char("/dev/snd/timer", 116, 33)
	filter := []USB{{Vendor: "0d8c", Product: "0014"}}

	t.Run("a directory: the first node with a USB device", func(t *testing.T) {
		got := r.scan(Spec{Paths: []string{"/dev/snd"}, USB: filter}, 0)
		if len(got.Devices) != 1 || got.Devices[0].Serial != "SND1" || got.Devices[0].Identity != "dir:/dev/snd" {
			t.Errorf("got\n%s", dump(got))
		}
	})
	t.Run("groups: members filtered one by one", func(t *testing.T) {
		got := r.scan(Spec{USB: filter, Groups: &Groups{Key: regexp.MustCompile(`C(\d+)`), Paths: []string{"/dev/snd/*C*"}}}, 0)
		checkResult(t, got, Result{Devices: []Device{{
			Path: "/dev/snd/controlC1", Key: "1", Identity: "usb:0d8c:0014:SND1", Serial: "SND1",
			Nodes: []Node{{"/dev/snd/controlC1", "/dev/snd/controlC1"}, {"/dev/snd/pcmC1D0p", "/dev/snd/pcmC1D0p"}},
		}}})
	})
}

func TestIdentity(t *testing.T) {
	r := newRoot(t)
	r.usbTTY("1-1", "0403", "6001", "A9X1", "ttyUSB0", 188, 0)
	r.usbTTY("1-3", "1a86", "7523", "", "ttyUSB2", 188, 2)
	r.link("/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0", "../../ttyUSB2")
	r.link("/dev/serial/by-id/usb-FTDI_FT232R_A9X1-if00-port0", "../../ttyUSB0")
	r.char("/dev/ttyS0", 4, 64)
	r.block("/dev/sda", 8, 0)
	r.link("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "../../sda")
	r.link("/dev/disk/by-id/ata-ST1000DM010_Z9A1", "../../sda")
	r.char("/dev/snd/controlC0", 116, 0)

	got := map[string]string{}
	for _, d := range r.scan(Spec{Paths: []string{"/dev/tty*", "/dev/sd*", "/dev/snd"}}, 0).Devices {
		got[d.Path] = d.Identity
	}
	for path, want := range map[string]string{
		"/dev/ttyUSB0": "usb:0403:6001:A9X1",                   // a USB serial beats a by-id name
		"/dev/ttyUSB2": "by-id:usb-1a86_USB_Serial-if00-port0", // no serial: udev's name
		"/dev/sda":     "by-id:ata-ST1000DM010_Z9A1",           // several names: the first
		"/dev/ttyS0":   "dev:4:64",
		"/dev/snd":     "dir:/dev/snd",
	} {
		if got[path] != want {
			t.Errorf("%s: identity %q, want %q", path, got[path], want)
		}
	}
}

// The reason for identities: ttyUSB0 is now another adapter.
func TestIdentityFollowsTheDeviceNotTheName(t *testing.T) {
	r := newRoot(t)
	r.usbTTY("1-1", "0403", "6001", "A9X1", "ttyUSB0", 188, 0)
	spec := Spec{Paths: []string{"/dev/ttyUSB*"}}
	before := r.scan(spec, 0)

	r.remove("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1")
	r.remove("/sys/dev/char/188:0")
	r.remove("/dev/ttyUSB0")
	r.usbTTY("1-2", "0403", "6001", "B7Q2", "ttyUSB0", 188, 0)
	after := r.scan(spec, 0)

	if len(before.Devices) != 1 || len(after.Devices) != 1 {
		t.Fatalf("before\n%s\nafter\n%s", dump(before), dump(after))
	}
	b, a := before.Devices[0], after.Devices[0]
	if b.Path != a.Path || b.Identity == a.Identity {
		t.Errorf("same name %s, identities %q then %q: want them to differ", a.Path, b.Identity, a.Identity)
	}
}

func TestScanErrors(t *testing.T) {
	good := newRoot(t)
	notDir := filepath.Join(good.dir, "dev", "file")
	good.file("/dev/file", "")
	for _, tc := range []struct {
		name string
		root string
		spec Spec
		want string
		is   error
	}{
		{"relative pattern", good.dir, Spec{Paths: []string{"dev/tty*"}}, `pattern "dev/tty*": not an absolute path`, nil},
		{"unclosed class", good.dir, Spec{Paths: []string{"/dev/tty["}}, `pattern "/dev/tty["`, filepath.ErrBadPattern},
		{"bad class after a star", good.dir, Spec{Paths: []string{"/dev/x*[a-]"}}, `pattern "/dev/x*[a-]"`, filepath.ErrBadPattern},
		{"bad glob in a directory", good.dir, Spec{Paths: []string{`/dev/[/x`}}, `pattern "/dev/[/x"`, filepath.ErrBadPattern},
		{"groups: bad glob", good.dir, Spec{Groups: &Groups{Key: regexp.MustCompile("x"), Paths: []string{`/dev/a\`}}}, `pattern "/dev/a\\"`, filepath.ErrBadPattern},
		{"no paths", good.dir, Spec{}, "no paths", nil},
		{"paths and groups", good.dir, Spec{Paths: []string{"/dev/a"}, Groups: &Groups{Key: regexp.MustCompile("x"), Paths: []string{"/dev/b"}}}, "exclusive", nil},
		{"groups without a key", good.dir, Spec{Groups: &Groups{Paths: []string{"/dev/b"}}}, "groups: no key", nil},
		{"groups without paths", good.dir, Spec{Groups: &Groups{Key: regexp.MustCompile("x")}}, "groups: no paths", nil},
		{"bad USB ID", good.dir, Spec{Paths: []string{"/dev/a"}, USB: []USB{{Vendor: "403", Product: "6001"}}}, "usb[0]: vendor and product must be 4 hex digits", nil},
		{"root missing", filepath.Join(good.dir, "nope"), Spec{Paths: []string{"/dev/a"}}, "no such file or directory", nil},
		{"root not a directory", notDir, Spec{Paths: []string{"/dev/a"}}, "not a directory", nil},
		{"no root", "", Spec{Paths: []string{"/dev/a"}}, "no root", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(tc.root, tc.spec, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Scan: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// validGlob must refuse whatever filepath.Match refuses, for any name;
// filepath.Match itself stops checking at the first mismatch.
func TestValidGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		valid   bool
	}{
		{"ttyUSB*", true}, {"tty?", true}, {"pcmC[0-9]D0[cp]", true}, {"[^a]", true},
		{`a\*`, true}, {`[\]]`, true}, {`[\-]`, true}, {"]", true}, {"-", true}, {"", true},
		{"[", false}, {"[]", false}, {"[]a]", false}, {"[^]", false}, {"[a-]", false},
		{"[-a]", false}, {`a\`, false}, {"x*[", false}, {"x*[a", false}, {`[a-\`, false}, {"[\x80]", false},
	} {
		if got := validGlob(tc.pattern); got != tc.valid {
			t.Errorf("validGlob(%q) = %v, want %v", tc.pattern, got, tc.valid)
		}
	}
}

func FuzzValidGlob(f *testing.F) {
	for _, s := range []string{"ttyUSB*", "[a-z]x", "x*[", `a\`, "[]a]", "[^b-c]*"} {
		f.Add(s, "tty")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if strings.Contains(pattern, "/") {
			return
		}
		if _, err := filepath.Match(pattern, name); err != nil && validGlob(pattern) {
			t.Errorf("validGlob(%q) accepts what filepath.Match refuses: %v", pattern, err)
		}
	})
}
