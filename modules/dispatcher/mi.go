package dispatcher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sipedge/sipedge/runtime/mi"
)

func miString(params map[string]any, name string) (string, bool) {
	raw, ok := params[name]
	if !ok || raw == nil {
		return "", false
	}
	switch v := raw.(type) {
	case string:
		return v, true
	case int:
		return strconv.Itoa(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		if v {
			return "1", true
		}
		return "0", true
	}
	return fmt.Sprint(raw), true
}

// ds_list [full]
func miList(params map[string]any) (any, error) {
	full := false
	if _, ok := params["full"]; ok {
		full = true
	}
	c := cur.Load()
	parts := []any{}
	for _, name := range c.order {
		p := c.parts[name]
		item := map[string]any{"name": name}
		var sets []any
		byID := map[int]map[string]any{}
		for _, di := range p.list() {
			set := byID[di.Set]
			if set == nil {
				set = map[string]any{"id": di.Set, "Destinations": []any{}}
				byID[di.Set] = set
				sets = append(sets, set)
			}
			dst := map[string]any{"URI": di.URI, "state": di.State.String(), "first_hit_counter": di.Hits}
			if di.Socket != "" {
				dst["socket"] = di.Socket
			}
			if di.Attrs != "" {
				dst["attr"] = di.Attrs
			}
			if full {
				dst["weight"] = di.Weight
				dst["priority"] = di.Priority
				if di.Description != "" {
					dst["description"] = di.Description
				}
			}
			set["Destinations"] = append(set["Destinations"].([]any), dst)
		}
		if len(sets) > 0 {
			item["SETS"] = sets
		}
		parts = append(parts, item)
	}
	return map[string]any{"PARTITIONS": parts}, nil
}

// ds_set_state state group address [partition]; group may be
// "partition:id".
func miSetState(params map[string]any) (any, error) {
	stateS, ok1 := miString(params, "state")
	group, ok2 := miString(params, "group")
	addr, ok3 := miString(params, "address")
	if !ok1 || !ok2 || !ok3 {
		return nil, mi.InvalidParams("Too few or too many parameters")
	}
	st, ok := ParseState(stateS)
	if !ok {
		return nil, mi.Errorf(400, "Bad state value")
	}
	partName, _ := miString(params, "partition")
	if pn, id, found := strings.Cut(group, ":"); found {
		partName, group = strings.TrimSpace(pn), id
	}
	set, err := strconv.Atoi(strings.TrimSpace(group))
	if err != nil {
		return nil, mi.Errorf(400, "Bad group value")
	}
	p, err := lookupPartition(partName)
	if err != nil {
		return nil, mi.Errorf(400, "%v", err)
	}
	s, dst := p.d.Load().find(set, strings.TrimSpace(addr))
	if dst == nil {
		return nil, mi.Errorf(404, "destination not found")
	}
	p.setState(s, dst, st, false)
	return nil, nil
}

// ds_reload [partition]
func miReload(params map[string]any) (any, error) {
	name, _ := miString(params, "partition")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Reload(ctx, strings.TrimSpace(name)); err != nil {
		return nil, mi.Errorf(500, "Failed to reload: %v", err)
	}
	return nil, nil
}
