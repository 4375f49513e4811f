// Command go-ttrpc-echo is the Go peer for Chukan's side-by-side benchmark: a
// containerd ttrpc server over mutual TLS that serves the same services as
// Chukan's echo server:
//
//	chukan.v1.Echo/Echo     returns the EchoMessage it was sent
//	chukan.v1.Health/Check  returns SERVING
//
// Once the listener is bound it prints "listening on ADDR" on stdout, so a
// script can wait for that line before starting the load. SIGINT or SIGTERM
// shuts it down cleanly.
//
// Build (GOPATH mode, no network needed on Debian with
// golang-github-containerd-ttrpc-dev installed):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o go-ttrpc-echo ./Benchmarks/peers/go-ttrpc-echo/main.go
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
)

// ---------------------------------------------------------------------------
// Messages: hand-written equivalents of protoc-gen-gogo output for
// chukan/v1/health.proto and chukan/v1/echo.proto (gogo struct tags plus the
// proto.Message methods); ttrpc's codec marshals them by reflection.
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

// ---------------------------------------------------------------------------
// Handlers. A ttrpc.Method gets an unmarshal callback for the request payload
// and returns a proto message to be marshalled as the response. Unknown
// services and methods are answered by ttrpc itself with codes.Unimplemented.
// ---------------------------------------------------------------------------

func echo(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req EchoMessage
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	return &req, nil
}

func check(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req HealthCheckRequest
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	return &HealthCheckResponse{Status: HealthCheckResponse_SERVING}, nil
}

func main() {
	var (
		addr     = flag.String("addr", "127.0.0.1:7443", "listen address host:port")
		certFile = flag.String("cert", "", "server certificate PEM (required)")
		keyFile  = flag.String("key", "", "server private key PEM (required)")
		caFile   = flag.String("ca", "", "PEM bundle of CAs for verifying client certificates (required; mutual TLS)")
		tls12    = flag.Bool("tls12", false, "also accept TLS 1.2 (default: TLS 1.3 only)")
	)
	flag.Parse()

	fatal := func(format string, args ...interface{}) {
		fmt.Fprintf(os.Stderr, "go-ttrpc-echo: "+format+"\n", args...)
		os.Exit(1)
	}
	if *certFile == "" || *keyFile == "" || *caFile == "" {
		fatal("-cert, -key and -ca are required")
	}

	// Mutual TLS: present our certificate, require a client certificate signed
	// by one of the CAs in -ca. No ALPN, matching Chukan.
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fatal("load server certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		fatal("read client CA bundle: %v", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		fatal("no certificates found in %s", *caFile)
	}
	tlsConfig := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
	}
	if *tls12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}

	server, err := ttrpc.NewServer()
	if err != nil {
		fatal("create ttrpc server: %v", err)
	}
	server.Register("chukan.v1.Echo", map[string]ttrpc.Method{"Echo": echo})
	server.Register("chukan.v1.Health", map[string]ttrpc.Method{"Check": check})

	// tls.Listen returns a listener whose connections perform the handshake
	// lazily on first read/write, i.e. in ttrpc's per-connection goroutine,
	// so a slow or failing handshake never blocks the accept loop.
	listener, err := tls.Listen("tcp", *addr, tlsConfig)
	if err != nil {
		fatal("listen on %s: %v", *addr, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ctx, listener) }()

	// The listener is bound, so connections made from now on are queued even
	// if Serve has not reached Accept yet. os.Stdout is unbuffered in Go, so
	// the line is written immediately; Sync is a no-op (error) on pipes.
	fmt.Printf("listening on %s\n", listener.Addr())
	_ = os.Stdout.Sync()

	select {
	case err := <-serveErr:
		// Serve only returns on its own for a fatal accept error.
		fatal("serve: %v", err)
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way

	// Graceful shutdown: stop accepting, close idle connections, and wait up
	// to 5s for in-flight calls; then force-close whatever is left.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(os.Stderr, "go-ttrpc-echo: shutdown: %v; closing\n", err)
		server.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "go-ttrpc-echo: serve: %v\n", err)
	}
	fmt.Println("shut down")
}
