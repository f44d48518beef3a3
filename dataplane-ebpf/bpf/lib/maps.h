/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every map of the dataplane. All are pinned by name, so each program object
 * and every agent restart shares the same instances under the agent's pin path.
 * Names are bh_<noun>, with a _v<N> suffix once their layout has changed.
 */
#ifndef BH_LIB_MAPS_H
#define BH_LIB_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BH_MAX_ENDPOINTS);
	__type(key, __u32); /* host-side ifindex */
	__type(value, struct bh_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BH_MAX_IPCACHE);
	__type(key, struct bh_ipcache_key);
	__type(value, struct bh_ipcache_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BH_MAX_POLICY);
	__type(key, struct bh_policy_key);
	__type(value, struct bh_policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BH_MAX_POLICY_RANGES);
	__type(key, struct bh_range_key);
	__type(value, struct bh_range_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_policy_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BH_MAX_CONNTRACK);
	__type(key, struct bh_ct_key);
	__type(value, struct bh_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BH_MAX_FRAGMENTS);
	__type(key, struct bh_frag_key);
	__type(value, struct bh_frag_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_fragments SEC(".maps");

/* An array, not a hash: the verifier inlines the lookup, so the check costs
 * next to nothing on every packet. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BH_MAX_ENDPOINT_ID);
	__type(key, __u32); /* endpoint_id */
	__type(value, struct bh_quarantine);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_quarantine_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BH_MAX_DENY_RATELIMIT);
	__type(key, struct bh_ct_key);
	__type(value, __u64); /* last event time */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_deny_ratelimit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bh_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_config_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BH_MAX_BLOCKS);
	__type(key, struct bh_ipcache_key);
	__type(value, struct bh_block_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_blocklist SEC(".maps");

/* A source's flow-event token bucket: credit in event-nanoseconds
 * (BH_NS_PER_SEC buys one event), refilled at the configured rate. */
struct bh_event_budget {
	__u64 last_ns;
	__u64 credit;
	__u64 suppressed; /* since the source's last emitted event */
};

struct bh_event_source {
	__u8 addr[16]; /* IPv4 as ::ffff:a.b.c.d, like the ipcache */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BH_MAX_EVENT_SOURCES);
	__type(key, struct bh_event_source);
	__type(value, struct bh_event_budget);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_event_budget SEC(".maps");

/* A pod's payload-sample bucket (see bh_sample), indexed by endpoint id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BH_MAX_ENDPOINT_ID);
	__type(key, __u32); /* endpoint_id */
	__type(value, struct bh_token_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_sample_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BH_FLOW_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_flows SEC(".maps");


/* Whether an endpoint is quarantined. */
static __always_inline int bh_quarantined(__u32 endpoint_id)
{
	struct bh_quarantine *q = bpf_map_lookup_elem(&bh_quarantine_v2, &endpoint_id);
	return q && (q->flags & BH_Q_F_ACTIVE);
}

/* Whether an address (IPv4-mapped or IPv6) falls in a blocked prefix. */
static __always_inline int bh_blocked(const __u8 *addr)
{
	struct bh_ipcache_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&bh_blocklist, &key) != 0;
}

#endif
