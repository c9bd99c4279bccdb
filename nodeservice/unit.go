// Package nodeservice installs simple-device-plugin as a systemd service of
// the node, ordered before the kubelet: its binary, its unit (the text of
// simple-device-plugin.service, embedded), the env file with the node's
// name, and the links `systemctl enable` would make; then, when the host
// runs systemd, the host's own systemctl reloads and (re)starts it.
//
// Everything is written under a host root (the host's / mounted at /host
// in the installer's pod), atomically, and only when it differs, so that
// running the installer again changes nothing.
package nodeservice

import (
	_ "embed"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// unitText is the unit with the default paths and port. deploy/node-service
// holds a copy for installing by hand, kept equal by a test.
//
//go:embed simple-device-plugin.service
var unitText string

// The unit's name, the binary's, and where they go by default.
const (
	UnitName         = "simple-device-plugin.service"
	BinaryName       = "simple-device-plugin"
	DefaultBinDir    = "/usr/local/bin"
	DefaultUnitDir   = "/etc/systemd/system"
	DefaultConfigDir = "/etc/simple-device-plugin"
	DefaultPort      = 9468
)

// wantedBy are the targets of the unit's WantedBy=, whose .wants dirs
// `systemctl enable` links the unit into.
var wantedBy = []string{"kubelet.service", "multi-user.target"}

// ManifestFile and EnvFile are the names, in the config dir, of the manifest
// the service serves (which sync writes) and of its environment.
const (
	ManifestFile = "manifest.yaml"
	EnvFile      = "env"
)

// hostPath is what a dir given to the installer may look like: absolute,
// and nothing systemd would read as a specifier (%), a quote or a word
// separator in ExecStart=.
var hostPath = regexp.MustCompile(`^/[A-Za-z0-9._+/-]*$`)

// checkDir refuses a dir the unit could not carry as written.
func checkDir(flag, dir string) error {
	if !hostPath.MatchString(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("--%s %q: want a clean absolute path of letters, digits and . _ + - / (the unit names it without quoting)", flag, dir)
	}
	return nil
}

// Unit is the unit's text for a binary in binDir, a config dir and the
// address (an IP, or "" for every interface) and port of /healthz, /readyz
// and /metrics. The defaults give the embedded text unchanged.
func Unit(binDir, configDir, address string, port int) (string, error) {
	if err := checkDir("bin-dir", binDir); err != nil {
		return "", err
	}
	if err := checkDir("config-dir", configDir); err != nil {
		return "", err
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("--port %d: want a port from 1 to 65535", port)
	}
	if address != "" && net.ParseIP(address) == nil {
		return "", fmt.Errorf("--address %q: want an IP address such as 127.0.0.1, or \"\" for every interface", address)
	}
	text := unitText
	var missing []string
	replace := func(old, new string) {
		if !strings.Contains(text, old) {
			missing = append(missing, old) // the unit changed and this function did not follow
			return
		}
		text = strings.ReplaceAll(text, old, new)
	}
	replace(DefaultBinDir+"/"+BinaryName+" ", filepath.Join(binDir, BinaryName)+" ")
	replace(DefaultConfigDir+"/", configDir+"/")
	listen := ":" + strconv.Itoa(port)
	if address != "" {
		listen = net.JoinHostPort(address, strconv.Itoa(port))
	}
	replace("--listen :"+strconv.Itoa(DefaultPort), "--listen "+listen)
	replace("port "+strconv.Itoa(DefaultPort), "port "+strconv.Itoa(port))
	// ConfigurationDirectory= takes a path relative to /etc; a config dir
	// elsewhere is created by the installer alone.
	const configComment = "# Creates " + DefaultConfigDir + " if it is missing, for the manifest.\n"
	const configDirective = "ConfigurationDirectory=simple-device-plugin\n"
	if rel, ok := strings.CutPrefix(configDir, "/etc/"); ok {
		replace(configComment+configDirective, strings.Replace(configComment, DefaultConfigDir, configDir, 1)+"ConfigurationDirectory="+rel+"\n")
	} else {
		replace(configComment+configDirective, "")
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the embedded unit has no %q to rewrite (a bug)", missing)
	}
	return text, nil
}
