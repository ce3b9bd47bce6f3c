//go:build tools

// Package deps pins tool and library dependencies that are not yet imported elsewhere.
package deps
import (
 _ "github.com/google/gopacket"
 _ "github.com/google/gopacket/pcapgo"
 _ "google.golang.org/grpc"
 _ "google.golang.org/protobuf/proto"
 _ "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
 _ "github.com/spf13/viper"
 _ "github.com/spf13/cobra"
 _ "github.com/schollz/progressbar/v3"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "modernc.org/sqlite"
 _ "buf.build/go/protovalidate"
)

