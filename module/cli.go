package module

// The hookgate command (`caddy hookgate …`) and hookgate's version in
// `caddy version` and `caddy list-modules --versions` come with the modules,
// so that every binary built with them (go build ./caddy, xcaddy build
// --with github.com/hookgate/hookgate) has them.
import _ "github.com/hookgate/hookgate/cli"
