package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// writeCert writes a self-signed ECDSA certificate for 127.0.0.1 with
// common name cn to certFile and its key to keyFile.
func writeCert(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written next to the target and renamed over it, as a certificate
	// manager does: the server never reads half a file.
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", kder}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// wssConn is a wss client connection and what it learned at its handshake.
type wssConn struct {
	c      *websocket.Conn
	cn     string // the server certificate's common name
	worker string
}

// dialWSS opens wss://addr/echo without verifying the certificate, noting
// which one the server presented.
func dialWSS(t *testing.T, addr string) *wssConn {
	t.Helper()
	var mu sync.Mutex
	var cn string
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // self-signed; the test checks the name itself
		VerifyConnection: func(cs tls.ConnectionState) error {
			mu.Lock()
			defer mu.Unlock()
			cn = cs.PeerCertificates[0].Subject.CommonName
			return nil
		},
	}}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://"+addr+"/echo", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	mu.Lock()
	defer mu.Unlock()
	return &wssConn{c: c, cn: cn, worker: resp.Header.Get("X-Wsgate-Worker")}
}

// echo sends msg and checks that it comes back.
func (w *wssConn) echo(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, p, err := w.c.Read(ctx)
	if err != nil || string(p) != msg {
		t.Fatalf("echo: got %q, %v; want %q", p, err, msg)
	}
}

// TestCertificateReloadOnHangup: two workers serve wss with certificate
// "old"; the files are replaced and the supervisor gets SIGHUP: new
// handshakes on both workers get "new", while connections opened before
// go on. A reload from a broken file keeps the certificate in use.
func TestCertificateReloadOnHangup(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, "old", certFile, keyFile)
	addr, cmd := startGate(t, "-workers", "2", "-tls-cert", certFile, "-tls-key", keyFile)

	// One connection on each worker, opened with the old certificate.
	before := map[string]*wssConn{}
	for i := 0; i < 200 && len(before) < 2; i++ {
		w := dialWSS(t, addr)
		if w.cn != "old" {
			t.Fatalf("got certificate %q, want old", w.cn)
		}
		if before[w.worker] == nil {
			before[w.worker] = w
		} else {
			_ = w.c.CloseNow()
		}
	}
	if len(before) != 2 {
		t.Fatalf("connections landed on workers %v, want 0 and 1", before)
	}

	writeCert(t, "new", certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{} // workers that presented the new certificate
	eventually(t, 10*time.Second, "both workers present the new certificate", func() bool {
		w := dialWSS(t, addr)
		defer w.c.CloseNow()
		if w.cn == "new" {
			seen[w.worker] = true
		}
		return seen["0"] && seen["1"]
	})
	for worker, w := range before {
		w.echo(t, "still here on worker "+worker)
	}

	// A broken file: the reload fails (logged), the new certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if w := dialWSS(t, addr); w.cn != "new" {
			t.Fatalf("after a failed reload: got certificate %q, want new", w.cn)
		} else {
			w.echo(t, "served")
			_ = w.c.CloseNow()
		}
	}
	for _, w := range before {
		w.echo(t, "and still here")
	}
}

// TestTLSVersions: the wss listener speaks TLS 1.2 and 1.3 and refuses
// older versions at the handshake.
func TestTLSVersions(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, "v", certFile, keyFile)
	addr, _ := startGate(t, "-tls-cert", certFile, "-tls-key", keyFile)
	for _, tt := range []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.0", tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, &tls.Config{
				InsecureSkipVerify: true, // self-signed; only the version matters here
				MinVersion:         tt.version, MaxVersion: tt.version,
			})
			if err == nil {
				defer c.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error %v, want success %v", err, tt.ok)
			}
			if tt.ok && c.ConnectionState().Version != tt.version {
				t.Fatalf("negotiated %x, want %x", c.ConnectionState().Version, tt.version)
			}
		})
	}
}
