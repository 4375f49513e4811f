// Command goclient is an interoperability checker for Chukan's ttrpc-over-TLS
// server. It connects with containerd's reference Go ttrpc client and runs a
// fixed list of checks against the chukan.v1.Health and chukan.v1.Echo
// services, printing "ok <check>" for each check that passes.
//
// On the first failure it prints "FAIL <check>: <detail>" to stderr and exits
// with status 1; it exits 0 when every check passes.
//
// Build (GOPATH mode, no network needed on Debian with
// golang-github-containerd-ttrpc-dev installed):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o goclient ./Tests/Interop/goclient/main.go
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ---------------------------------------------------------------------------
// Messages. These are hand-written equivalents of what protoc-gen-gogo would
// generate for chukan/v1/health.proto and chukan/v1/echo.proto: plain structs
// with gogo "protobuf" struct tags plus the proto.Message methods
// (Reset/String/ProtoMessage). The ttrpc codec marshals them by reflection.
// ---------------------------------------------------------------------------

// HealthCheckRequest is chukan.v1.HealthCheckRequest (no fields).
type HealthCheckRequest struct{}

func (m *HealthCheckRequest) Reset()         { *m = HealthCheckRequest{} }
func (m *HealthCheckRequest) String() string { return fmt.Sprintf("%+#v", m) }
func (m *HealthCheckRequest) ProtoMessage()  {}

// HealthCheckResponse_ServingStatus is chukan.v1.HealthCheckResponse.ServingStatus.
type HealthCheckResponse_ServingStatus int32

const (
	HealthCheckResponse_UNKNOWN     HealthCheckResponse_ServingStatus = 0
	HealthCheckResponse_SERVING     HealthCheckResponse_ServingStatus = 1
	HealthCheckResponse_NOT_SERVING HealthCheckResponse_ServingStatus = 2
)

func (s HealthCheckResponse_ServingStatus) String() string {
	switch s {
	case HealthCheckResponse_UNKNOWN:
		return "UNKNOWN"
	case HealthCheckResponse_SERVING:
		return "SERVING"
	case HealthCheckResponse_NOT_SERVING:
		return "NOT_SERVING"
	}
	return fmt.Sprintf("ServingStatus(%d)", int32(s))
}

// HealthCheckResponse is chukan.v1.HealthCheckResponse.
type HealthCheckResponse struct {
	Status HealthCheckResponse_ServingStatus `protobuf:"varint,1,opt,name=status,proto3,enum=chukan.v1.HealthCheckResponse_ServingStatus"`
}

func (m *HealthCheckResponse) Reset()         { *m = HealthCheckResponse{} }
func (m *HealthCheckResponse) String() string { return fmt.Sprintf("%+#v", m) }
func (m *HealthCheckResponse) ProtoMessage()  {}

// EchoMessage is chukan.v1.EchoMessage.
type EchoMessage struct {
	Payload []byte `protobuf:"bytes,1,opt,name=payload,proto3"`
}

func (m *EchoMessage) Reset()         { *m = EchoMessage{} }
func (m *EchoMessage) String() string { return fmt.Sprintf("%+#v", m) }
func (m *EchoMessage) ProtoMessage()  {}

// Fully qualified ttrpc service names and their methods.
const (
	healthService = "chukan.v1.Health"
	echoService   = "chukan.v1.Echo"
)

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

// checkError is a failed check: the check's name and what went wrong.
type checkError struct {
	check  string
	detail string
}

func (e *checkError) Error() string { return fmt.Sprintf("FAIL %s: %s", e.check, e.detail) }

func failf(check, format string, args ...interface{}) error {
	return &checkError{check: check, detail: fmt.Sprintf(format, args...)}
}

// pattern returns n deterministic, non-trivial bytes derived from seed, so
// that payloads differ between calls and byte-order mistakes are visible.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + seed*131 + (i>>8)*7) & 0xff)
	}
	return b
}

// describe shortens a payload for error messages.
func describe(b []byte) string {
	if len(b) <= 16 {
		return fmt.Sprintf("%d bytes %x", len(b), b)
	}
	return fmt.Sprintf("%d bytes %x...", len(b), b[:16])
}

// client bundles the ttrpc client with the per-call timeout.
type client struct {
	c       *ttrpc.Client
	timeout time.Duration
}

// call performs one unary ttrpc call with its own deadline.
func (c *client) call(service, method string, req, resp interface{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.c.Call(ctx, service, method, req, resp)
}

// echo sends payload through chukan.v1.Echo/Echo and checks it comes back
// unchanged.
func (c *client) echo(check string, payload []byte) error {
	var resp EchoMessage
	if err := c.call(echoService, "Echo", &EchoMessage{Payload: payload}, &resp); err != nil {
		return failf(check, "Echo call failed: %v", err)
	}
	if !bytes.Equal(resp.Payload, payload) {
		return failf(check, "payload mismatch: sent %s, got %s", describe(payload), describe(resp.Payload))
	}
	return nil
}

// expectUnimplemented calls service/method and requires a gRPC status error
// with code Unimplemented (ttrpc carries google.rpc.Status in its responses).
func (c *client) expectUnimplemented(check, service, method string) error {
	var resp EchoMessage
	err := c.call(service, method, &EchoMessage{Payload: []byte("x")}, &resp)
	if err == nil {
		return failf(check, "%s/%s succeeded, want Unimplemented", service, method)
	}
	st, ok := status.FromError(err)
	if !ok {
		return failf(check, "%s/%s: error is not a gRPC status: %T %v", service, method, err, err)
	}
	if st.Code() != codes.Unimplemented {
		return failf(check, "%s/%s: got code %v (%q), want Unimplemented", service, method, st.Code(), st.Message())
	}
	return nil
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

// checkHealth: chukan.v1.Health/Check must report SERVING.
func checkHealth(c *client) error {
	var resp HealthCheckResponse
	if err := c.call(healthService, "Check", &HealthCheckRequest{}, &resp); err != nil {
		return failf("health", "Check call failed: %v", err)
	}
	if resp.Status != HealthCheckResponse_SERVING {
		return failf("health", "status %v, want SERVING", resp.Status)
	}
	return nil
}

// checkEcho: a 1000-byte payload must round-trip unchanged.
func checkEcho(c *client) error { return c.echo("echo", pattern(1, 1000)) }

// checkEchoEmpty: an empty payload (encoded as an empty message) must
// round-trip to an empty payload.
func checkEchoEmpty(c *client) error { return c.echo("echo-empty", nil) }

// checkConcurrent: 50 calls in flight at once on the same connection, each
// with a distinct payload, must each get their own payload back (i.e. the
// server matches responses to stream IDs correctly).
func checkConcurrent(c *client) error {
	const n = 50
	var (
		wg   sync.WaitGroup
		errs = make([]error, n)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Distinct content and length per call.
			payload := append([]byte(fmt.Sprintf("call-%02d:", i)), pattern(i+100, 64+i*37)...)
			errs[i] = c.echo("echo-concurrent", payload)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return failf("echo-concurrent", "call %d: %v", i, err.(*checkError).detail)
		}
	}
	return nil
}

// checkUnknownMethod: a known service with an unknown method → Unimplemented.
func checkUnknownMethod(c *client) error {
	return c.expectUnimplemented("unknown-method", echoService, "NoSuchMethod")
}

// checkUnknownService: an unknown service → Unimplemented.
func checkUnknownService(c *client) error {
	return c.expectUnimplemented("unknown-service", "chukan.v1.NoSuchService", "X")
}

// checkStillAlive: after the error responses the connection must still work.
func checkStillAlive(c *client) error { return c.echo("still-alive", []byte("still here")) }

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

func main() {
	var (
		addr       = flag.String("addr", "", "server address host:port (required)")
		caFile     = flag.String("ca", "", "PEM bundle of CAs trusted to sign the server certificate (required)")
		certFile   = flag.String("cert", "", "client certificate PEM (required)")
		keyFile    = flag.String("key", "", "client private key PEM (required)")
		serverName = flag.String("server-name", "localhost", "expected server name (SNI and certificate verification)")
		timeout    = flag.Duration("timeout", 10*time.Second, "timeout for the connection and for each call")
	)
	flag.Parse()

	fatal := func(check, format string, args ...interface{}) {
		fmt.Fprintf(os.Stderr, "FAIL %s: %s\n", check, fmt.Sprintf(format, args...))
		os.Exit(1)
	}

	if *addr == "" || *caFile == "" || *certFile == "" || *keyFile == "" {
		fatal("flags", "-addr, -ca, -cert and -key are required")
	}

	// TLS configuration: TLS 1.2+, client certificate, our own CA bundle, no ALPN.
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		fatal("setup", "read CA bundle: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		fatal("setup", "no certificates found in %s", *caFile)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fatal("setup", "load client certificate: %v", err)
	}
	tlsConfig := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
		ServerName:   *serverName,
	}

	// Dial and complete the handshake up front, so TLS problems are reported
	// as such rather than as an obscure failure of the first call.
	dialer := &net.Dialer{Timeout: *timeout}
	conn, err := tls.DialWithDialer(dialer, "tcp", *addr, tlsConfig)
	if err != nil {
		fatal("connect", "TLS dial %s: %v", *addr, err)
	}
	state := conn.ConnectionState()
	fmt.Printf("ok connect (%s)\n", tlsVersionName(state.Version))

	c := &client{c: ttrpc.NewClient(conn), timeout: *timeout}
	defer c.c.Close()

	checks := []struct {
		name string
		run  func(*client) error
	}{
		{"health", checkHealth},
		{"echo", checkEcho},
		{"echo-empty", checkEchoEmpty},
		{"echo-concurrent", checkConcurrent},
		{"unknown-method", checkUnknownMethod},
		{"unknown-service", checkUnknownService},
		{"still-alive", checkStillAlive},
	}
	for _, ch := range checks {
		if err := ch.run(c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			c.c.Close()
			os.Exit(1)
		}
		fmt.Printf("ok %s\n", ch.name)
	}
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	}
	return fmt.Sprintf("TLS 0x%04x", v)
}
