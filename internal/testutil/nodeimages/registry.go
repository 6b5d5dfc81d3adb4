package nodeimages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Server is an in-memory OCI registry (go-containerregistry's
// pkg/registry) over plain HTTP, serving the images pushed into it.
type Server struct {
	addr string
	srv  *http.Server
	done chan struct{}
	err  error // of http.Server.Serve, read after done
}

// Serve starts a registry on addr (e.g. "127.0.0.1:5000"; port 0 picks a
// free one, see Addr) and pushes every image as <addr>/<Repository>:<Tag>.
// Image references name the registry host Registry; the node's containerd
// mirrors that host to this address, so repositories and tags are the same.
// Close stops it.
func Serve(addr string, images ...Image) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nodeimages: registry listen: %w", err)
	}
	s := &Server{
		addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
			ReadHeaderTimeout: 30 * time.Second,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	for _, img := range images {
		if err := s.Push(context.Background(), img); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Addr is the registry's host:port.
func (s *Server) Addr() string { return s.addr }

// Push uploads one image tarball as <Addr>/<Repository>:<Tag> (layers the
// registry already holds, such as the Debian layer shared by postgres and
// orthanc, are not sent again).
func (s *Server) Push(ctx context.Context, img Image) error { return Push(ctx, s.addr, img) }

// Push uploads image tarballs to the registry at addr (host:port, plain
// HTTP), each as <addr>/<Repository>:<Tag>: images a test needs beyond
// those the node's registry was started with (testcluster.RegistryAddr).
func Push(ctx context.Context, addr string, images ...Image) error {
	for _, img := range images {
		i, err := tarball.ImageFromPath(img.Path, nil)
		if err != nil {
			return fmt.Errorf("nodeimages: load %s: %w", img.Path, err)
		}
		ref, err := name.NewTag(addr+"/"+img.Repository+":"+img.Tag, name.Insecure)
		if err != nil {
			return fmt.Errorf("nodeimages: reference of %s: %w", img.Name, err)
		}
		if err := remote.Write(ref, i, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("nodeimages: push %s: %w", ref, err)
		}
	}
	return nil
}

// Close stops the registry (its content is lost).
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return errors.Join(err, s.err)
}
