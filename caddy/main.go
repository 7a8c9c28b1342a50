// Command caddy is a Caddy binary with the standard modules plus hookgate's:
//
//	go run ./caddy run --config Caddyfile
//	go build -o hookgate ./caddy && ./hookgate list-modules | grep hookgate
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/hookgate/hookgate/module"
)

func main() {
	caddycmd.Main()
}
