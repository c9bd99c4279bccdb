package host_test

import (
	"net"
	"testing"
)

// makeStaleSocket leaves a socket file with nobody listening, as a crashed
// process does.
func makeStaleSocket(t *testing.T, path string) {
	t.Helper()
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()
}
