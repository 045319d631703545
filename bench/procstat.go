package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Server process figures from /proc: resident memory, CPU time, threads.

// procSample is one reading of a process.
type procSample struct {
	RSSKiB  int64   `json:"rss_kib"`
	CPUSecs float64 `json:"cpu_secs"` // user + system, since the process started
	Threads int     `json:"threads"`
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux platform Go supports.
const clockTicks = 100

func readProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			s.Threads, _ = strconv.Atoi(f[1])
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: utime and stime are fields 14 and 15 of the line.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) > 12 {
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.CPUSecs = (ut + st) / clockTicks
	}
	return s, nil
}

// sumProcs reads several processes and adds their figures up.
func sumProcs(pids []int) (procSample, error) {
	var total procSample
	for _, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return total, fmt.Errorf("server pid %d: %w", pid, err)
		}
		total.RSSKiB += s.RSSKiB
		total.CPUSecs += s.CPUSecs
		total.Threads += s.Threads
	}
	return total, nil
}

// pidsListening finds the processes with a listening TCP socket on port:
// the socket inodes from /proc/net/tcp{,6}, then which process holds them.
// Several processes are found when they share the port (SO_REUSEPORT).
func pidsListening(port int) ([]int, error) {
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listenInodes(file, port, inodes); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	if len(inodes) == 0 {
		return nil, fmt.Errorf("no process listens on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, dir := range procs {
		pid, _ := strconv.Atoi(filepath.Base(dir))
		if pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(dir + "/fd")
		for _, fd := range fds {
			link, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err == nil && strings.HasPrefix(link, "socket:[") && inodes[link[8:len(link)-1]] {
				pids = append(pids, pid)
				break
			}
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("port %d: listening socket found but not its process (run as the same user or root)", port)
	}
	return pids, nil
}

func listenInodes(file string, port int, into map[string]bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	want := fmt.Sprintf(":%04X", port)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local_address rem_address st ... inode (field 9)
		if len(fields) > 9 && fields[3] == "0A" && strings.HasSuffix(fields[1], want) {
			into[fields[9]] = true
		}
	}
	return sc.Err()
}

// kernelMemory reads the machine's kernel memory in slabs (where socket
// structures live) and the pages TCP buffers hold, from /proc.
func kernelMemory() (slabKiB, tcpBufKiB int64) {
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Slab:" {
				slabKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "TCP:" {
				for i := 1; i+1 < len(f); i += 2 {
					if f[i] == "mem" {
						pages, _ := strconv.ParseInt(f[i+1], 10, 64)
						tcpBufKiB = pages * int64(os.Getpagesize()) / 1024
					}
				}
			}
		}
	}
	return slabKiB, tcpBufKiB
}
