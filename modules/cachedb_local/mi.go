package cachedblocal

import (
	"errors"
	"fmt"
	"strconv"
)

// MI commands: OpenSIPS's core cache_store/cache_fetch/cache_remove (here
// only the "local" system exists) and cachedb_local's cache_fetch_chunk and
// cache_remove_chunk.

func miString(params map[string]any, name string, required bool) (string, error) {
	raw, ok := params[name]
	if !ok || raw == nil {
		if required {
			return "", fmt.Errorf("missing parameter %s", name)
		}
		return "", nil
	}
	switch v := raw.(type) {
	case string:
		return v, nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("parameter %s must be a string", name)
}

func miInt(params map[string]any, name string) (int, bool, error) {
	raw, ok := params[name]
	if !ok || raw == nil {
		return 0, false, nil
	}
	switch v := raw.(type) {
	case int:
		return v, true, nil
	case float64:
		if v != float64(int(v)) {
			return 0, true, fmt.Errorf("parameter %s must be an integer", name)
		}
		return int(v), true, nil
	case string:
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, true, fmt.Errorf("parameter %s must be an integer, not %q", name, v)
		}
		return n, true, nil
	}
	return 0, true, fmt.Errorf("parameter %s must be an integer", name)
}

// miTarget reads the system and attr parameters.
func miTarget(params map[string]any) (*Collection, string, error) {
	sys, err := miString(params, "system", true)
	if err != nil {
		return nil, "", err
	}
	if sys == "" {
		return nil, "", errors.New("empty memory cache id")
	}
	attr, err := miString(params, "attr", true)
	if err != nil {
		return nil, "", err
	}
	if attr == "" {
		return nil, "", errors.New("empty attribute name")
	}
	b, err := parseBackend(sys)
	if err != nil {
		return nil, "", err
	}
	c := Lookup(b.group)
	if c == nil {
		return nil, "", fmt.Errorf("no cachedb_url defines %q", sys)
	}
	return c, attr, nil
}

func miStore(params map[string]any) (any, error) {
	c, attr, err := miTarget(params)
	if err != nil {
		return nil, err
	}
	val, err := miString(params, "value", true)
	if err != nil {
		return nil, err
	}
	if val == "" {
		return nil, errors.New("empty value")
	}
	expire, _, err := miInt(params, "expire")
	if err != nil {
		return nil, err
	}
	if expire < 0 {
		return nil, errors.New("negative expire value")
	}
	c.Store(attr, val, expire)
	return "OK", nil
}

func miFetch(params map[string]any) (any, error) {
	c, attr, err := miTarget(params)
	if err != nil {
		return nil, err
	}
	v, ok := c.Fetch(attr)
	if !ok || v == "" {
		return nil, errors.New("value not found")
	}
	return map[string]any{"key": attr, "value": v}, nil
}

func miRemove(params map[string]any) (any, error) {
	c, attr, err := miTarget(params)
	if err != nil {
		return nil, err
	}
	c.Remove(attr)
	return "OK", nil
}

// miChunkTarget reads glob and the optional collection.
func miChunkTarget(params map[string]any) (*Collection, string, error) {
	glob, err := miString(params, "glob", true)
	if err != nil {
		return nil, "", err
	}
	name, err := miString(params, "collection", false)
	if err != nil {
		return nil, "", err
	}
	cfg := cur.Load()
	if name == "" {
		return cfg.first, glob, nil
	}
	c := cfg.byName[name]
	if c == nil {
		return nil, "", fmt.Errorf("collection <%s> not defined", name)
	}
	return c, glob, nil
}

func miFetchChunk(params map[string]any) (any, error) {
	c, glob, err := miChunkTarget(params)
	if err != nil {
		return nil, err
	}
	kvs := c.FetchChunk(glob)
	keys := make([]any, 0, len(kvs))
	for _, kv := range kvs {
		keys = append(keys, map[string]any{"name": kv.Key, "value": kv.Value})
	}
	return map[string]any{"keys": keys}, nil
}

func miRemoveChunk(params map[string]any) (any, error) {
	c, glob, err := miChunkTarget(params)
	if err != nil {
		return nil, err
	}
	c.RemoveChunk(glob)
	return "OK", nil
}
