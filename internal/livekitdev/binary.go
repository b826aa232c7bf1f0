package livekitdev

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EnvBinary names the environment variable that points at livekit-server.
const EnvBinary = "ROOMCAST_LIVEKIT_SERVER"

// findBinary resolves the server binary: explicit path, $ROOMCAST_LIVEKIT_SERVER,
// <module root>/.bin/server (where the Makefile builds it), then PATH.
func findBinary(explicit string) (string, error) {
	if explicit != "" {
		return checkBinary(explicit)
	}
	if p := os.Getenv(EnvBinary); p != "" {
		return checkBinary(p)
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".bin", "server")
		if _, err := os.Stat(p); err == nil {
			return checkBinary(p)
		}
	}
	for _, name := range []string{"livekit-server", "server"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("livekitdev: livekit-server not found: set %s, build .bin/server in the module root, or put livekit-server on PATH", EnvBinary)
}

func checkBinary(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("livekitdev: livekit-server binary: %w", err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("livekitdev: livekit-server binary %s is not an executable file", p)
	}
	return p, nil
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("livekitdev: no go.mod above the working directory")
		}
		dir = parent
	}
}
