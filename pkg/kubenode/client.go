package kubenode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// ErrNotFound is wrapped by Get when the Node does not exist (yet: the
// kubelet registers it after it starts).
var ErrNotFound = errors.New("node not found")

// Node is what the gate and the annotations need from a Node object.
type Node struct {
	Name        string
	Ready       bool   // the Ready condition is True
	ReadyReason string // the Ready condition's reason and message, or why there is none
	Annotations map[string]string
	OSImage     string
}

// Client talks to the API server as the kubeconfig's user.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns a client for cfg; each request times out after 15 s.
func New(cfg Config) (*Client, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: nil, TLSHandshakeTimeout: 10 * time.Second}
	return &Client{cfg: cfg, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}, nil
}

type nodeJSON struct {
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
		NodeInfo struct {
			OSImage string `json:"osImage"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

// Get reads the Node name.
func (c *Client) Get(ctx context.Context, name string) (Node, error) {
	var nj nodeJSON
	if err := c.do(ctx, http.MethodGet, name, "", nil, &nj); err != nil {
		return Node{}, err
	}
	n := Node{Name: nj.Metadata.Name, Annotations: nj.Metadata.Annotations, OSImage: nj.Status.NodeInfo.OSImage, ReadyReason: "no Ready condition yet"}
	for _, cd := range nj.Status.Conditions {
		if cd.Type == "Ready" {
			n.Ready = cd.Status == "True"
			n.ReadyReason = fmt.Sprintf("Ready=%s", cd.Status)
			if cd.Reason != "" {
				n.ReadyReason += " " + cd.Reason
			}
			if cd.Message != "" {
				n.ReadyReason += ": " + cd.Message
			}
		}
	}
	return n, nil
}

// Annotate sets the annotations in set and removes those in remove, on the
// Node name, with a JSON merge patch (only the keys named change; a
// kubelet's credentials may patch their own Node).
func (c *Client) Annotate(ctx context.Context, name string, set map[string]string, remove []string) error {
	ann := map[string]any{}
	for k, v := range set {
		ann[k] = v
	}
	for _, k := range remove {
		ann[k] = nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPatch, name, "application/merge-patch+json", body, nil)
}

// Readyz asks the API server whether it is ready (GET /readyz): the gate
// of a server that runs no kubelet (--disable-agent).
func (c *Client) Readyz(ctx context.Context) error {
	return c.request(ctx, http.MethodGet, c.cfg.Server+"/readyz", "", nil, nil)
}

func (c *Client) do(ctx context.Context, method, name, ctype string, body []byte, out any) error {
	if name == "" {
		return fmt.Errorf("%s node: no node name", method)
	}
	return c.request(ctx, method, c.cfg.Server+"/api/v1/nodes/"+url.PathEscape(name), ctype, body, out)
}

func (c *Client) request(ctx context.Context, method, u, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		msg := string(bytes.TrimSpace(b))
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		err := fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, msg)
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, u, err)
		}
	}
	return nil
}
