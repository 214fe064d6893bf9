// Package shared holds what the interoperability test's Go plugin and Go host
// agree on: loophost's go-plugin handshake (docs: DESIGN.md section 3) and the
// go-plugin glue for loophost.v1.Echo, the one-call service loop-example serves.
//
// The Go stubs for proto/loophost/v1/echo.proto are generated at build time
// (protoc-gen-go plugins=grpc, paths=source_relative) into the build tree's
// GOPATH entry as package lhgoplugin/loophost/v1; see tests/goplugin/CMakeLists.txt.
package shared

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	loophostv1 "lhgoplugin/loophost/v1"
)

// Handshake is loophost's handshake: go-plugin's magic cookie and app protocol
// version 1. The cookie only stops a user from running a plugin by hand.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "LOOPHOST_PLUGIN_COOKIE",
	MagicCookieValue: "d2a4c6e8-loophost-v1",
}

// Echoer is what the host sees once it dispenses "echo".
type Echoer interface {
	Echo(ctx context.Context, payload []byte) ([]byte, error)
}

// EchoPlugin implements plugin.GRPCPlugin for loophost.v1.Echo.
type EchoPlugin struct {
	plugin.Plugin // the net/rpc half of plugin.Plugin, unused (gRPC only)
	Impl          Echoer
}

// GRPCServer registers loophost.v1.Echo on the plugin's server.
func (p *EchoPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	loophostv1.RegisterEchoServer(s, &echoServer{impl: p.Impl})
	return nil
}

// GRPCClient wraps the host's connection in an Echoer.
func (p *EchoPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &echoClient{client: loophostv1.NewEchoClient(c)}, nil
}

// PluginMap is the plugin set both sides use: one plugin, "echo".
var PluginMap = map[string]plugin.Plugin{
	"echo": &EchoPlugin{},
}

type echoClient struct{ client loophostv1.EchoClient }

func (c *echoClient) Echo(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := c.client.Echo(ctx, &loophostv1.EchoRequest{Payload: payload})
	if err != nil {
		return nil, err
	}
	return resp.Payload, nil
}

type echoServer struct{ impl Echoer }

func (s *echoServer) Echo(ctx context.Context, req *loophostv1.EchoRequest) (*loophostv1.EchoResponse, error) {
	out, err := s.impl.Echo(ctx, req.Payload)
	if err != nil {
		return nil, err
	}
	return &loophostv1.EchoResponse{Payload: out}, nil
}
