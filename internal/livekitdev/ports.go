package livekitdev

import (
	"fmt"
	"net"
)

// freeTCPPort and freeUDPPort ask the kernel for an unused loopback port and
// release it for the server to bind. Another process may grab it in between;
// Start retries once when that happens.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("livekitdev: pick TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("livekitdev: pick UDP port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
