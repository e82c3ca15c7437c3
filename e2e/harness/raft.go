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
	var last error
	for {
		st, err := c.raftStateOnce(ctx, token)
		if err == nil {
			if problem := c.raftProblem(st); problem == "" {
				return st, nil
			} else {
				last = fmt.Errorf("raft not healthy yet: %s", problem)
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("timed out waiting for every vault node to be a healthy raft voter: %w (last: %w)", ctx.Err(), last)
		case <-time.After(10 * pollInterval):
		}
	}
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
