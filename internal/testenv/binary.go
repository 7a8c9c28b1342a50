package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary is a Go main package built once for a test process's tests that
// run it as a user would; the tests' TestMain calls Remove when they end.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds pkg (with the extra go build flags) on first use and returns
// the binary's path. Tests that run binaries are skipped with -short.
func (b *Binary) Path(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "hookgate-test-binary"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "hookgate")
		args := append(append([]string{"build", "-o", b.path}, flags...), pkg)
		cmd := exec.Command("go", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the built binary.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
