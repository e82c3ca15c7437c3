//go:build costs

package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTicks returns utime+stime of pid, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from its
	// closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed times in /proc/%d/stat", pid)
	}
	return u + s, nil
}

// statusKB returns a "kB" field of /proc/<pid>/status, such as VmRSS.
func statusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed %s in /proc/%d/status: %w", field, pid, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// usage is what a process cost over a sampling window.
type usage struct {
	window     time.Duration
	cpuPercent float64 // of one core, averaged over the window
	rssMeanMB  float64
	rssMaxMB   float64
	hwmMB      float64 // peak RSS since the process started
}

func (u usage) String() string {
	return fmt.Sprintf("CPU %.2f%% of a core, RSS %.1f MB (max %.1f, peak since start %.1f) over %s",
		u.cpuPercent, u.rssMeanMB, u.rssMaxMB, u.hwmMB, u.window)
}

// sample reads pid's CPU time and RSS every second for window.
func sample(t *testing.T, pid int, window time.Duration) usage {
	t.Helper()
	c0, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var sum, peak int64
	n := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range tick.C {
		rss, err := statusKB(pid, "VmRSS")
		if err != nil {
			t.Fatal(err)
		}
		sum += rss
		peak = max(peak, rss)
		n++
		if time.Since(start) >= window {
			break
		}
	}
	c1, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	hwm, err := statusKB(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	return usage{
		window:     el.Round(time.Second),
		cpuPercent: 100 * float64(c1-c0) / clockTicks / el.Seconds(),
		rssMeanMB:  float64(sum) / float64(n) / 1024,
		rssMaxMB:   float64(peak) / 1024,
		hwmMB:      float64(hwm) / 1024,
	}
}

// sampleAll samples several processes over the same window.
func sampleAll(t *testing.T, pids []int, window time.Duration) []usage {
	t.Helper()
	out := make([]usage, len(pids))
	var wg sync.WaitGroup
	for i, pid := range pids {
		wg.Go(func() { out[i] = sample(t, pid, window) })
	}
	wg.Wait()
	return out
}

// table collects the rows printed at the end of the run.
var table struct {
	mu   sync.Mutex
	rows [][4]string
}

// record adds a row: what was measured, the figure, the goal, the setup.
func record(what, figure, goal, setup string) {
	table.mu.Lock()
	defer table.mu.Unlock()
	table.rows = append(table.rows, [4]string{what, figure, goal, setup})
}

func printTable() {
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.rows) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("| measurement | figure | goal | setup |")
	fmt.Println("| --- | --- | --- | --- |")
	for _, r := range table.rows {
		fmt.Printf("| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
	}
}

// window is the idle sampling window, from KEYSHARE_COSTS_WINDOW.
func window(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("KEYSHARE_COSTS_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 2*time.Second {
			t.Fatalf("KEYSHARE_COSTS_WINDOW=%q: want a duration of at least 2s", v)
		}
		return d
	}
	return 30 * time.Second
}
