// goclient: a static Go program (CGO_ENABLED=0: raw system calls, no libc)
// that loads a page through a SOCKS5 proxy with a hand-written CONNECT
// (standard library only), then tries the same server directly.
//
// Usage: goclient PROXY_HOST:PORT TARGET_IPV4 TARGET_PORT
// Prints "body: <page body>" and "direct: <EPERM|connected|error text>".
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("error: "+format+"\n", args...)
	os.Exit(1)
}

// socksConnect asks the SOCKS5 proxy (no authentication) for a connection to ip:port.
func socksConnect(proxy string, ip net.IP, port int) net.Conn {
	c, err := net.DialTimeout("tcp", proxy, 10*time.Second)
	if err != nil {
		fail("dial proxy %s: %v", proxy, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		fail("greeting: %v", err)
	}
	reply := make([]byte, 2)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 5 || reply[1] != 0 {
		fail("greeting reply %x: %v", reply, err)
	}
	req := []byte{5, 1, 0, 1}
	req = append(req, ip.To4()...)
	req = append(req, byte(port>>8), byte(port))
	if _, err := c.Write(req); err != nil {
		fail("connect request: %v", err)
	}
	// VER REP RSV ATYP=1 BND.ADDR(4) BND.PORT(2)
	head := make([]byte, 10)
	if _, err := io.ReadFull(c, head); err != nil || head[1] != 0 {
		fail("connect reply %x: %v", head, err)
	}
	return c
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: goclient PROXY_HOST:PORT TARGET_IPV4 TARGET_PORT")
	}
	proxy, target := os.Args[1], os.Args[2]
	port, err := strconv.Atoi(os.Args[3])
	ip := net.ParseIP(target)
	if err != nil || ip == nil || ip.To4() == nil {
		fail("bad target %s:%s", target, os.Args[3])
	}

	c := socksConnect(proxy, ip, port)
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s:%d\r\n\r\n", target, port)
	resp, err := io.ReadAll(c)
	c.Close()
	if err != nil {
		fail("read response: %v", err)
	}
	parts := strings.SplitN(string(resp), "\r\n\r\n", 2)
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "HTTP/1.0 200") {
		fail("bad response %q", resp)
	}
	fmt.Printf("body: %s", parts[1])

	d, err := net.DialTimeout("tcp", net.JoinHostPort(target, strconv.Itoa(port)), 5*time.Second)
	switch {
	case err == nil:
		d.Close()
		fmt.Println("direct: connected")
	case errors.Is(err, syscall.EPERM):
		fmt.Println("direct: EPERM")
	default:
		fmt.Printf("direct: %v\n", err)
	}
}
