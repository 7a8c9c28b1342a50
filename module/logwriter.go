package module

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/hookgate/hookgate/internal/logbuf"
)

func init() {
	caddy.RegisterModule(BufferedWriter{})
}

// BufferedWriter is the caddy.logging.writers.buffered log writer: it holds
// log lines in memory for up to FlushInterval, or until it holds Size
// bytes, and writes them to its writer together. A gateway logs a line for
// every event accepted and every delivery attempt; buffered, those lines
// cost one write system call per batch instead of one each.
//
// The cost is lines held in memory: a process killed by SIGKILL (or a
// crash that is not a Go panic logged through zap) loses the lines of its
// last FlushInterval. A clean stop, a config reload and a fatal log entry
// write them out. Lines are never split: each is written whole.
//
// Caddy keeps a log writer open across configurations and does not close
// it when the last configuration using it is unloaded, so the module counts
// the configurations that use each buffer (Provision, Cleanup): when none
// is left, the buffer is written out and what is logged from then on (the
// process's last lines as it stops) goes straight to the writer.
type BufferedWriter struct {
	// WriterRaw is the writer the lines go to. Default: stderr.
	WriterRaw json.RawMessage `json:"writer,omitempty" caddy:"namespace=caddy.logging.writers inline_key=output"`
	// FlushInterval is how long a line waits at most before it is written.
	// Default: 100ms.
	FlushInterval caddy.Duration `json:"flush_interval,omitempty"`
	// Size is how many bytes the buffer holds before it is written out.
	// A line larger than this is written at once. Default: 262144 (256 KiB).
	Size int `json:"size,omitempty"`

	writer caddy.WriterOpener
}

// Interface guards.
var (
	_ caddy.Module          = (*BufferedWriter)(nil)
	_ caddy.Provisioner     = (*BufferedWriter)(nil)
	_ caddy.CleanerUpper    = (*BufferedWriter)(nil)
	_ caddy.Validator       = (*BufferedWriter)(nil)
	_ caddy.WriterOpener    = (*BufferedWriter)(nil)
	_ caddyfile.Unmarshaler = (*BufferedWriter)(nil)
)

// maxBufferSize bounds Size: a log buffer is not a queue.
const maxBufferSize = 64 << 20

// CaddyModule returns the Caddy module information.
func (BufferedWriter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.writers.buffered",
		New: func() caddy.Module { return new(BufferedWriter) },
	}
}

// bufferUses holds, per WriterKey, the buffer opened for it and how many
// loaded configurations use it.
var bufferUses = struct {
	sync.Mutex
	m map[string]*bufferUse
}{m: map[string]*bufferUse{}}

type bufferUse struct {
	configs int
	w       *logbuf.Writer // nil until Caddy opens the writer
}

// Provision loads the writer the lines go to, and counts this
// configuration as a user of its buffer.
func (bw *BufferedWriter) Provision(ctx caddy.Context) error {
	if bw.WriterRaw == nil {
		bw.writer = caddy.StderrWriter{}
	} else {
		mod, err := ctx.LoadModule(bw, "WriterRaw")
		if err != nil {
			return fmt.Errorf("loading the buffered log's writer: %w", err)
		}
		bw.writer = mod.(caddy.WriterOpener)
	}
	bufferUses.Lock()
	defer bufferUses.Unlock()
	use := bufferUses.m[bw.WriterKey()]
	if use == nil {
		use = &bufferUse{}
		bufferUses.m[bw.WriterKey()] = use
	}
	use.configs++
	if use.configs == 1 && use.w != nil {
		use.w.SetDirect(false) // in use again after every user was unloaded
	}
	return nil
}

// Cleanup writes out the buffer when no loaded configuration uses it any
// more, and sends what is logged from then on straight to the writer.
func (bw *BufferedWriter) Cleanup() error {
	if bw.writer == nil {
		return nil // not provisioned
	}
	bufferUses.Lock()
	defer bufferUses.Unlock()
	use := bufferUses.m[bw.WriterKey()]
	if use == nil {
		return nil
	}
	use.configs--
	if use.configs <= 0 {
		use.configs = 0
		if use.w != nil {
			use.w.SetDirect(true)
		}
	}
	return nil
}

// Validate checks the bounds.
func (bw *BufferedWriter) Validate() error {
	if bw.Size < 0 || bw.Size > maxBufferSize {
		return fmt.Errorf("buffered log writer: size %d out of range 0..%d", bw.Size, maxBufferSize)
	}
	if bw.FlushInterval < 0 || time.Duration(bw.FlushInterval) > time.Minute {
		return fmt.Errorf("buffered log writer: flush_interval %v out of range 0..1m", time.Duration(bw.FlushInterval))
	}
	return nil
}

func (bw *BufferedWriter) String() string { return "buffered " + bw.writer.String() }

// WriterKey identifies the buffered writer by its writer and settings:
// loggers configured alike share one buffer, and a reload that keeps them
// keeps it.
func (bw *BufferedWriter) WriterKey() string {
	return fmt.Sprintf("buffered:%d:%d:%s", bw.Size, bw.FlushInterval, bw.writer.WriterKey())
}

// OpenWriter opens the underlying writer and buffers it. Caddy calls it
// once per WriterKey and keeps the writer for later configurations.
func (bw *BufferedWriter) OpenWriter() (io.WriteCloser, error) {
	out, err := bw.writer.OpenWriter()
	if err != nil {
		return nil, err
	}
	w := logbuf.New(out, bw.Size, time.Duration(bw.FlushInterval))
	bufferUses.Lock()
	defer bufferUses.Unlock()
	use := bufferUses.m[bw.WriterKey()]
	if use == nil {
		use = &bufferUse{}
		bufferUses.m[bw.WriterKey()] = use
	}
	use.w = w
	if use.configs == 0 {
		w.SetDirect(true)
	}
	return w, nil
}

// UnmarshalCaddyfile sets up the writer from Caddyfile tokens:
//
//	output buffered {
//		writer         <module> [<args...>] [{ ... }]   # default: stderr
//		flush_interval <duration>                       # default: 100ms
//		size           <bytes>                          # default: 256KiB
//	}
func (bw *BufferedWriter) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the writer's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "writer":
			if bw.WriterRaw != nil {
				return d.Err("writer already set")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			var wo caddy.WriterOpener
			switch name {
			case "stdout":
				wo = caddy.StdoutWriter{}
			case "stderr":
				wo = caddy.StderrWriter{}
			case "discard":
				wo = caddy.DiscardWriter{}
			case "buffered":
				return d.Err("a buffered writer cannot write to another buffered writer")
			default:
				unm, err := caddyfile.UnmarshalModule(d, "caddy.logging.writers."+name)
				if err != nil {
					return err
				}
				var ok bool
				if wo, ok = unm.(caddy.WriterOpener); !ok {
					return d.Errf("module %s (%T) is not a log writer", name, unm)
				}
			}
			if name == "stdout" || name == "stderr" || name == "discard" {
				if d.NextArg() {
					return d.ArgErr()
				}
			}
			bw.WriterRaw = caddyconfig.JSONModuleObject(wo, "output", name, nil)
		case "flush_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("flush_interval: %v", err)
			}
			if dur <= 0 || dur > time.Minute {
				return d.Errf("flush_interval %s: want more than 0 and at most 1m", v)
			}
			bw.FlushInterval = caddy.Duration(dur)
		case "size":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(v)
			if err != nil {
				return d.Errf("size: %v", err)
			}
			if n == 0 || n > maxBufferSize {
				return d.Errf("size %s: want more than 0 and at most 64MiB", v)
			}
			bw.Size = int(n)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}
