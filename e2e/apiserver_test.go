package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

const (
	// etcdEnv names the etcd binary; by default etcd from PATH (Debian's
	// etcd-server package puts it in /usr/bin).
	etcdEnv = "SDP_E2E_ETCD"
	// apiServerLogEnv=1 streams etcd's and the kube-apiserver's logs to
	// stderr.
	apiServerLogEnv = "SDP_E2E_APISERVER_LOG"
)

// apiServer is a kube-apiserver run in this process by the kubelet
// project's own test server (cmd/kube-apiserver/app/testing), backed by an
// etcd process of its own; both listen on 127.0.0.1 only. The binary under
// test reaches it through a kubeconfig file.
type apiServer struct {
	etcd       *etcdProcess
	server     kubeapiservertesting.TestServer
	config     *rest.Config
	client     kubernetes.Interface
	kubeconfig string // file for --kubeconfig
	started    time.Duration
}

// shared is the one API server of the test binary: started by the first
// test that needs it, stopped by TestMain after every test ran.
var shared struct {
	once sync.Once
	srv  *apiServer
	tb   *processTB
	err  error
}

// testAPIServer returns the test binary's API server, starting it (and
// its etcd) on first use. Objects outlive a test: each test uses names of
// its own and deletes what it created.
func testAPIServer(t testing.TB) *apiServer {
	t.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.tb = newProcessTB("kube-apiserver", os.Getenv(apiServerLogEnv) == "1")
		shared.srv, shared.err = startAPIServer(shared.tb)
		if shared.err != nil {
			shared.tb.runCleanups()
			return
		}
		shared.srv.started = time.Since(start)
	})
	if errors.Is(shared.err, errNoEtcd) {
		msg := fmt.Sprintf("the DRA tests need etcd for their API server: %v", shared.err)
		if os.Getenv(requiredEnv) == "1" {
			t.Fatalf("%s=1 but %s", requiredEnv, msg)
		}
		t.Skip(msg)
	}
	if shared.err != nil {
		t.Fatalf("start the test API server: %v\n%s", shared.err, shared.tb.logs())
	}
	return shared.srv
}

// stopAPIServer stops the shared API server and its etcd, if one was
// started, and removes their files.
func stopAPIServer() {
	if shared.tb != nil {
		shared.tb.runCleanups()
	}
}

func startAPIServer(tb *processTB) (srv *apiServer, err error) {
	// StartTestServer calls Fatalf for a few setup errors: processTB
	// panics with a fatal, turned into an error here.
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = errors.New(string(f))
		}
	}()
	srv = &apiServer{}
	srv.etcd, err = startEtcd(tb)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(srv.etcd.stop)

	storage := storagebackend.NewDefaultConfig("/"+uuid.New().String()+"/registry", nil)
	storage.Transport.ServerList = []string{srv.etcd.url}
	srv.server, err = kubeapiservertesting.StartTestServer(tb,
		&kubeapiservertesting.TestServerInstanceOptions{
			// The invariant check scrapes metrics at teardown and wants a
			// testing.T; it tests the API server, not us.
			DisableInvariantChecks: true,
		},
		[]string{
			// No controller creates service accounts here.
			"--disable-admission-plugins=ServiceAccount",
		},
		storage)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(srv.server.TearDownFn)
	srv.config = rest.CopyConfig(srv.server.ClientConfig)
	srv.client, err = kubernetes.NewForConfig(srv.config)
	if err != nil {
		return nil, err
	}
	srv.kubeconfig = filepath.Join(tb.TempDir(), "kubeconfig")
	if err := writeKubeconfig(srv.config, srv.kubeconfig); err != nil {
		return nil, err
	}
	return srv, nil
}

// writeKubeconfig writes cfg (the test server's loopback client: a
// bearer token of system:masters, the server's own CA) as a kubeconfig file.
func writeKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		TLSServerName:            cfg.ServerName,
		InsecureSkipTLSVerify:    cfg.Insecure,
	}
	kc.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kc.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*kc, path)
}

// errNoEtcd: there is no etcd binary to run.
var errNoEtcd = errors.New("etcd not found")

// etcdProcess is an etcd of the tests, on 127.0.0.1 and a data dir of its
// own.
type etcdProcess struct {
	cmd  *exec.Cmd
	dir  string
	url  string
	out  *syncBuffer
	done chan struct{}
}

// startEtcd starts etcd on free loopback ports and waits until it answers.
// A port taken between finding it free and etcd binding it makes etcd
// exit: then it tries again with new ports.
func startEtcd(tb *processTB) (*etcdProcess, error) {
	bin := os.Getenv(etcdEnv)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			return nil, fmt.Errorf("%w in PATH (Debian: apt-get install etcd-server; or set %s=/path/to/etcd)", errNoEtcd, etcdEnv)
		}
	}
	var lastErr error
	for range 3 {
		e, err := startEtcdOnce(tb, bin)
		if err == nil {
			return e, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startEtcdOnce(tb *processTB, bin string) (*etcdProcess, error) {
	dir, err := os.MkdirTemp("", "sdp-e2e-etcd-")
	if err != nil {
		return nil, err
	}
	client, peer, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &etcdProcess{dir: dir, url: "http://" + client, out: &syncBuffer{}, done: make(chan struct{})}
	e.cmd = exec.Command(bin,
		"--name", "e2e",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", e.url,
		"--advertise-client-urls", e.url,
		"--listen-peer-urls", "http://"+peer,
		"--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "e2e=http://"+peer,
		"--logger", "zap",
		"--log-level", "warn",
		// The tests write a few hundred objects; no need to fsync them.
		"--unsafe-no-fsync",
	)
	var w io.Writer = e.out
	if tb.verbose {
		w = io.MultiWriter(e.out, os.Stderr)
	}
	e.cmd.Stdout, e.cmd.Stderr = w, w
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %v", bin, err)
	}
	go func() {
		_ = e.cmd.Wait()
		close(e.done)
	}()
	took, ok, why := poll(registerTimeout, func() (bool, string) {
		select {
		case <-e.done:
			return true, "exited"
		default:
		}
		return etcdHealthy(e.url)
	})
	select {
	case <-e.done:
		os.RemoveAll(dir)
		return nil, fmt.Errorf("etcd exited: %v\n%s", e.cmd.ProcessState, e.out.String())
	default:
	}
	if !ok {
		e.stop()
		return nil, fmt.Errorf("etcd not healthy after %v: %s\n%s", took, why, e.out.String())
	}
	tb.Logf("etcd %s healthy after %v", e.url, took.Round(time.Millisecond))
	return e, nil
}

// etcdHealthy is a condition: etcd's /health answers true.
func etcdHealthy(url string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"true"`)) {
		return false, fmt.Sprintf("/health: %d %s", resp.StatusCode, body)
	}
	return true, ""
}

// stop ends etcd (SIGTERM, then SIGKILL) and removes its data.
func (e *etcdProcess) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
	os.RemoveAll(e.dir)
}

// freePorts returns n loopback addresses with distinct ports that were
// free a moment ago.
func freePorts(n int) (string, string, error) {
	var addrs []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs[0], addrs[1], nil
}

// fatal is what processTB panics with.
type fatal string

// processTB is the ktesting.TB the shared API server runs with: it lives
// as long as the test binary, not one test. Its logs are kept (the last
// part) to be shown when starting fails, or streamed when verbose.
type processTB struct {
	name    string
	verbose bool

	mu       sync.Mutex
	out      bytes.Buffer
	cleanups []func()
	failed   bool
	tempDirs []string
}

func newProcessTB(name string, verbose bool) *processTB {
	return &processTB{name: name, verbose: verbose}
}

// maxProcessLog bounds what processTB keeps of its logs.
const maxProcessLog = 1 << 20

func (p *processTB) write(s string) {
	if p.verbose {
		fmt.Fprintln(os.Stderr, s)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out.Len() > maxProcessLog {
		rest := slices.Clone(p.out.Bytes()[p.out.Len()-maxProcessLog/2:])
		p.out.Reset()
		p.out.Write(rest)
	}
	p.out.WriteString(s)
	p.out.WriteByte('\n')
}

func (p *processTB) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// runCleanups runs the cleanups last first, once.
func (p *processTB) runCleanups() {
	p.mu.Lock()
	cs := p.cleanups
	p.cleanups = nil
	dirs := p.tempDirs
	p.tempDirs = nil
	p.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}

func (p *processTB) Attr(string, string) {}
func (p *processTB) Chdir(dir string) {
	if err := os.Chdir(dir); err != nil {
		p.Fatalf("chdir: %v", err)
	}
}
func (p *processTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}
func (p *processTB) Error(args ...any) { p.Fail(); p.write("ERROR: " + fmt.Sprint(args...)) }
func (p *processTB) Errorf(format string, args ...any) {
	p.Fail()
	p.write("ERROR: " + fmt.Sprintf(format, args...))
}
func (p *processTB) Fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = true
}
func (p *processTB) FailNow() { p.Fail(); panic(fatal(p.name + " failed")) }
func (p *processTB) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}
func (p *processTB) Fatal(args ...any) { p.Fail(); panic(fatal(fmt.Sprint(args...))) }
func (p *processTB) Fatalf(format string, args ...any) {
	p.Fail()
	panic(fatal(fmt.Sprintf(format, args...)))
}
func (p *processTB) Helper()                          {}
func (p *processTB) Log(args ...any)                  { p.write(fmt.Sprint(args...)) }
func (p *processTB) Logf(format string, args ...any)  { p.write(fmt.Sprintf(format, args...)) }
func (p *processTB) Name() string                     { return p.name }
func (p *processTB) Setenv(key, value string)         { _ = os.Setenv(key, value) }
func (p *processTB) Skip(args ...any)                 { p.Fatal(args...) }
func (p *processTB) Skipf(format string, args ...any) { p.Fatalf(format, args...) }
func (p *processTB) SkipNow()                         { p.FailNow() }
func (p *processTB) Skipped() bool                    { return false }
func (p *processTB) TempDir() string {
	dir, err := os.MkdirTemp("", "sdp-e2e-"+strings.ReplaceAll(p.name, "/", "_")+"-")
	if err != nil {
		p.Fatalf("temp dir: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tempDirs = append(p.tempDirs, dir)
	return dir
}
