package harness

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// RaftState asks the cluster, through node n, for raft autopilot's view:
// every server, its suffrage and whether autopilot deems it healthy. It
// needs a token allowed to read sys/storage/raft/autopilot/state, such as
// the root token; the token is used for this one request only.
func (n *VaultNode) RaftState(ctx context.Context, token string) (*api.AutopilotState, error) {
	cl, err := n.Client()
	if err != nil {
		return nil, err
	}
	cl.SetToken(token)
	st, err := cl.Sys().RaftAutopilotStateWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read raft autopilot state through %s: %w", n, err)
	}
	if st == nil {
		return nil, fmt.Errorf("raft autopilot state through %s is empty", n)
	}
	return st, nil
}

// WaitRaftHealthy polls autopilot through the active node until every node
// of the cluster is a healthy voter (or the leader). New nodes join as
// non-voters and are promoted after autopilot's stabilization time (10 s by
// default), and a restarted node is healthy again once it has caught up.
func (c *VaultCluster) WaitRaftHealthy(ctx context.Context, token string) (*api.AutopilotState, error) {
	var st *api.AutopilotState
	err := PollEvery(ctx, 10*pollInterval, "every vault node to be a healthy raft voter", func() (bool, error) {
		var err error
		if st, err = c.raftStateOnce(ctx, token); err != nil {
			return false, err
		}
		if p := c.raftProblem(st); p != "" {
			return false, fmt.Errorf("raft not healthy yet: %s", p)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (c *VaultCluster) raftStateOnce(ctx context.Context, token string) (*api.AutopilotState, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	leader, err := c.WaitLeader(actx)
	if err != nil {
		return nil, err
	}
	return leader.RaftState(actx, token)
}

// raftProblem names what is still missing for a fully healthy cluster, or
// returns "".
func (c *VaultCluster) raftProblem(st *api.AutopilotState) string {
	var problems []string
	for _, n := range c.nodes {
		s, ok := st.Servers[n.Name]
		switch {
		case !ok:
			problems = append(problems, n.Name+" is not a raft server")
		case !s.Healthy:
			problems = append(problems, n.Name+" is unhealthy (last contact "+s.LastContact+")")
		case s.Status != "voter" && s.Status != "leader":
			problems = append(problems, n.Name+" is a "+s.Status)
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}

// probePath is where WaitReplicated writes: the token's own cubbyhole, so
// the probe needs no policy and touches nothing of the cluster's.
const probePath = "cubbyhole/keyshare-harness-probe"

// WaitReplicated proves that every running node is in the raft cluster now,
// not just earlier: it writes a probe through the active node with token,
// reads the raft index the leader committed for it, and waits until every
// other running node reports (in sys/leader) that it applied that index.
// Autopilot alone can lag: it still calls a node healthy for seconds after
// it was killed.
func (c *VaultCluster) WaitReplicated(ctx context.Context, token string) error {
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		return err
	}
	cl, err := leader.Client()
	if err != nil {
		return err
	}
	cl.SetToken(token)
	if _, err := cl.Logical().WriteWithContext(ctx, probePath, map[string]any{"at": time.Now().String()}); err != nil {
		return fmt.Errorf("failed to write raft probe through %s: %w", leader, err)
	}
	l, err := leader.Leader(ctx)
	if err != nil {
		return err
	}
	if l.RaftCommittedIndex == 0 {
		return fmt.Errorf("%s reports no raft committed index; is raft the storage?", leader)
	}
	for _, n := range c.nodes {
		if n == leader || !n.Process.Running() {
			continue
		}
		if err := n.waitApplied(ctx, l.RaftCommittedIndex); err != nil {
			return err
		}
	}
	return nil
}

// waitApplied polls sys/leader on n until it has applied raft index idx.
func (n *VaultNode) waitApplied(ctx context.Context, idx uint64) error {
	return PollEvery(ctx, pollInterval, fmt.Sprintf("%s to apply raft index %d", n, idx), func() (bool, error) {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		l, err := n.Leader(actx)
		if err != nil {
			return false, err
		}
		return l.RaftAppliedIndex >= idx, fmt.Errorf("applied %d", l.RaftAppliedIndex)
	})
}
