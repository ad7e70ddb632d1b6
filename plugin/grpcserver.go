package plugin

import (
	"context"
	"runtime"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/mcusign/mcusign/plugin/pb"
)

func registerSigner(s *grpc.Server, svc Service) { pb.RegisterSignerServer(s, NewServer(svc)) }

// UploadWindow is the HTTP/2 flow-control window of one Sign upload (a
// connection gets twice that): how much of an image a client may send
// before the daemon has read any of it.
const UploadWindow = 4 << 20

// ShutdownMethod is go-plugin's controller RPC that stops a server; any
// connected peer may call it.
const ShutdownMethod = "/plugin.GRPCController/Shutdown"

// ServerConfig shapes the gRPC server a daemon serves on; pass
// GRPCServer() as go-plugin's ServeConfig.GRPCServer.
type ServerConfig struct {
	// Creds replaces the transport credentials go-plugin supplies. Both
	// daemons use peer credentials here: a standing one admits its allowed
	// users, an on-demand one its parent process alone.
	Creds credentials.TransportCredentials
	// Standing serves the Signer service and the health check only:
	// go-plugin's controller (whose Shutdown would let any client stop the
	// daemon), broker, stdio and reflection services are refused.
	Standing bool
	// Refused, if set, is told when a client calls Shutdown. (Every
	// go-plugin client also opens the stdio and broker streams; those are
	// refused quietly, they are plumbing, not an attempt at anything.)
	Refused func(ctx context.Context, method string)
	// Created, if set, receives the server (for GracefulStop on SIGTERM).
	Created func(*grpc.Server)
}

// GRPCServer returns the constructor for go-plugin's ServeConfig.GRPCServer.
func (cfg ServerConfig) GRPCServer() func([]grpc.ServerOption) *grpc.Server {
	return func(opts []grpc.ServerOption) *grpc.Server {
		// Flow-control windows large enough for a typical image: with
		// HTTP/2's default 64 KiB, every 64 KiB of an upload waits for a
		// window update, i.e. for both processes to be scheduled again.
		opts = append(opts, grpc.InitialWindowSize(UploadWindow), grpc.InitialConnWindowSize(2*UploadWindow),
			// Long-lived workers serve the calls: a fresh goroutine per
			// call grows its stack anew every time.
			grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
		if cfg.Creds != nil {
			// Appended last, so it replaces any credentials in opts.
			opts = append(opts, grpc.Creds(cfg.Creds))
		}
		if cfg.Standing {
			opts = append(opts,
				grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					if err := cfg.allowed(ctx, info.FullMethod); err != nil {
						return nil, err
					}
					return h(ctx, req)
				}),
				grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
					if err := cfg.allowed(ss.Context(), info.FullMethod); err != nil {
						return err
					}
					return h(srv, ss)
				}),
			)
		}
		s := grpc.NewServer(opts...)
		if cfg.Created != nil {
			cfg.Created(s)
		}
		return s
	}
}

func (cfg ServerConfig) allowed(ctx context.Context, method string) error {
	if strings.HasPrefix(method, "/"+pb.Signer_ServiceDesc.ServiceName+"/") || method == "/grpc.health.v1.Health/Check" {
		return nil
	}
	if method == ShutdownMethod {
		if cfg.Refused != nil {
			cfg.Refused(ctx, method)
		}
		return status.Error(codes.PermissionDenied, "a standing mcusignd cannot be shut down by its clients; stop it with SIGTERM (systemctl stop mcusignd)")
	}
	return status.Errorf(codes.Unimplemented, "%s is not served by a standing mcusignd", method)
}
