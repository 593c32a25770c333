package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sipedge/sipedge/runtime/mi"
)

// DefaultMIURL is where mi_http answers with httpd's defaults.
const DefaultMIURL = "http://127.0.0.1:8888/mi"

// arrayCommands take all their arguments as one array parameter, as
// opensips-cli sends them ("get_statistics core: tm:").
var arrayCommands = map[string]string{
	"get_statistics":   "statistics",
	"list_statistics":  "statistics",
	"reset_statistics": "statistics",
}

// runMI is `sipedge mi [-url URL] CMD [key=value ...|arg ...]`, like
// `opensips-cli -x mi CMD`: it sends one JSON-RPC request to mi_http and
// prints the result as indented JSON. key=value arguments are named
// parameters, other arguments positional ones (all of one kind). It exits
// 1 when the command fails.
func runMI(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", DefaultMIURL, "mi_http URL")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sipedge mi [-url URL] [-timeout D] CMD [key=value ...|arg ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	method := fs.Arg(0)
	params, err := miParams(method, fs.Args()[1:])
	if err != nil {
		fmt.Fprintln(stderr, "sipedge mi:", err)
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	result, err := miCall(client, *url, method, params)
	if err != nil {
		var rpcErr *mi.Error
		if errors.As(err, &rpcErr) {
			fmt.Fprintf(stderr, "error: %d: %s\n", rpcErr.Code, rpcErr.Message)
			printErrorData(stderr, rpcErr.Data)
		} else {
			fmt.Fprintln(stderr, "sipedge mi:", err)
		}
		return 1
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, result, "", "    ") != nil {
		pretty.Reset()
		pretty.Write(result)
	}
	pretty.WriteByte('\n')
	stdout.Write(pretty.Bytes())
	return 0
}

func printErrorData(w io.Writer, data any) {
	switch d := data.(type) {
	case nil:
	case string:
		fmt.Fprintln(w, d)
	case []any:
		for _, line := range d {
			fmt.Fprintln(w, line)
		}
	default:
		b, _ := json.MarshalIndent(d, "", "    ")
		fmt.Fprintln(w, string(b))
	}
}

// miParams builds the params member: nil, a positional array or a named
// object. Values are sent as strings (OpenSIPS reads numbers from strings).
func miParams(method string, args []string) (any, error) {
	if len(args) == 0 {
		return nil, nil
	}
	named := 0
	for _, a := range args {
		if k, _, ok := strings.Cut(a, "="); ok && k != "" && !strings.ContainsAny(k, " :") {
			named++
		}
	}
	if named != 0 && named != len(args) {
		return nil, errors.New("give either key=value arguments or positional ones, not both")
	}
	arrayParam, isArray := arrayCommands[method]
	if named == 0 {
		if isArray {
			return []any{toAny(args)}, nil
		}
		return toAny(args), nil
	}
	out := map[string]any{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		if isArray && k == arrayParam {
			prev, _ := out[k].([]any)
			for _, s := range strings.Split(v, ",") {
				if s != "" {
					prev = append(prev, s)
				}
			}
			out[k] = prev
			continue
		}
		out[k] = v
	}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// miCall sends one JSON-RPC request and returns the raw result; a
// JSON-RPC error comes back as *mi.Error.
func miCall(client *http.Client, url, method string, params any) (json.RawMessage, error) {
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": 1}
	if params != nil {
		req["params"] = params
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s: %s", url, resp.Status, strings.TrimSpace(string(data)))
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *mi.Error       `json:"error"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: not a JSON-RPC answer: %v", url, err)
	}
	if out.Error != nil {
		return nil, out.Error
	}
	if out.Result == nil {
		return nil, fmt.Errorf("%s: answer without a result", url)
	}
	return out.Result, nil
}
