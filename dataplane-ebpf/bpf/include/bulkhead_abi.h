/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel/user ABI of the Bulkhead dataplane, written once.
 *
 * Everything the eBPF programs and the Rust agent exchange (map keys and
 * values, flow events, enums and reason codes) is defined here and nowhere
 * else. The Rust side is generated from this file by bindgen with the BPF
 * target's layout and checked field by field at compile time.
 *
 * Rules for editing:
 *   - fixed-width types only, no bool, no implicit padding (write _pad);
 *   - a layout change bumps BH_ABI_VERSION and the map name's version suffix;
 *   - reason codes are stable: never renumber, never reuse a retired code.
 */
#ifndef BULKHEAD_ABI_H
#define BULKHEAD_ABI_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

#define BH_ABI_VERSION 1

/* Capacity of each map. Chosen for a node with ~250 pods and a large cluster. */
#define BH_MAX_ENDPOINTS 4096
/* Endpoint ids are 1..BH_MAX_ENDPOINT_ID-1; they index the quarantine array. */
#define BH_MAX_ENDPOINT_ID 65536
#define BH_MAX_IPCACHE 262144
#define BH_MAX_POLICY 262144
#define BH_MAX_POLICY_RANGES 65536
#define BH_MAX_CONNTRACK 262144
#define BH_MAX_FRAGMENTS 8192
#define BH_MAX_DENY_RATELIMIT 16384
#define BH_MAX_BLOCKS 65536
#define BH_MAX_EVENT_SOURCES 65536
/* Flow events per initiating address: refill rate per second and bucket size. */
#define BH_EVENTS_PER_SOURCE 4000
#define BH_EVENTS_BURST 8000
/*
 * Payload samples (type identification): the first bytes of the first
 * payload each way of a connection a pod serves, at most BH_SAMPLE_BYTES,
 * at most BH_SAMPLES_PER_ENDPOINT a second per pod (bucket of
 * BH_SAMPLES_BURST). A TLS ClientHello's sample is BH_SAMPLE_TLS_HEAD bytes
 * of its start plus the rest from its first extension, where SNI and ALPN are.
 */
#define BH_SAMPLE_BYTES 128
#define BH_SAMPLE_TLS_HEAD 16
#define BH_SAMPLES_PER_ENDPOINT 64
#define BH_SAMPLES_BURST 256
#define BH_FLOW_RING_BYTES (4 * 1024 * 1024)

/* Reserved identities. Allocated identities start at BH_ID_FIRST_ALLOCATED. */
enum bh_reserved_identity {
	BH_ID_ANY = 0,     /* wildcard in policy keys; never an IP's identity */
	BH_ID_HOST = 1,    /* the node itself */
	BH_ID_WORLD = 2,   /* any address outside the cluster */
	BH_ID_UNKNOWN = 3, /* inside the cluster ranges but not (yet) known */
	BH_ID_FIRST_ALLOCATED = 256,
};

/* Direction is always relative to the pod: EGRESS = traffic the pod sends. */
enum bh_direction {
	BH_DIR_INGRESS = 0,
	BH_DIR_EGRESS = 1,
};

enum bh_mode {
	BH_MODE_LEARN = 0,   /* observe only */
	BH_MODE_AUDIT = 1,   /* decide, report "would drop", forward anyway */
	BH_MODE_ENFORCE = 2, /* decide and drop */
};

enum bh_action {
	BH_ACTION_ALLOW = 1,
	BH_ACTION_DENY = 2,
};

enum bh_verdict {
	BH_VERDICT_FORWARDED = 1,
	BH_VERDICT_DROPPED = 2,
	BH_VERDICT_AUDIT = 3, /* would have been dropped; forwarded by audit mode */
};

enum bh_event_type {
	BH_EV_NEW = 1,      /* first packet of a connection */
	BH_EV_DENIED = 2,   /* dropped attempt (rate-limited per tuple) */
	BH_EV_CLOSED = 3,   /* FIN/RST seen, or expired by the agent's sweep */
	BH_EV_COUNTERS = 4, /* periodic counters of a long-lived connection */
	BH_EV_SAMPLE = 5,   /* a payload sample (struct bh_sample_event), not a connection event */
};

/*
 * Why a packet was forwarded or dropped. Stable codes: never renumber or reuse.
 * 1..99 are drops (or would-drops in audit mode), 100.. are forwards.
 */
enum bh_reason {
	BH_REASON_NONE = 0,
	BH_REASON_POLICY_DENY = 1,      /* an explicit deny entry matched */
	BH_REASON_DEFAULT_DENY = 2,     /* direction isolated and no allow matched */
	BH_REASON_QUARANTINE = 3,       /* endpoint quarantined */
	BH_REASON_MALFORMED = 4,        /* truncated or invalid L3/L4 header */
	BH_REASON_FRAG_UNKNOWN = 5,     /* non-first fragment whose first was not seen */
	BH_REASON_UNSUPPORTED_L3 = 6,   /* neither IPv4, IPv6 nor ARP */
	BH_REASON_SPOOFED_SOURCE = 7,   /* pod sent with a source address not its own */
	BH_REASON_FRAG_DENIED = 8,      /* fragment of a datagram whose first fragment was denied */
	BH_REASON_BLOCKED = 9,          /* source or destination on the cluster's block list */
	BH_REASON_ALLOWED_BY_RULE = 100,
	BH_REASON_NOT_ISOLATED = 101,   /* no policy selects the pod in this direction */
	BH_REASON_ESTABLISHED = 102,
	BH_REASON_LEARN_MODE = 103,
	BH_REASON_NEIGHBOR_DISCOVERY = 104,
	BH_REASON_FRAG_FOLLOWS_FIRST = 105,
};

/* Per-CPU counters in bh_stats. Indexes are stable. */
enum bh_stat {
	BH_STAT_PKTS_FORWARDED = 0,
	BH_STAT_PKTS_DROPPED = 1,
	BH_STAT_PKTS_AUDIT = 2,
	BH_STAT_CT_NEW = 3,
	BH_STAT_EVENTS_SENT = 4,
	BH_STAT_EVENTS_LOST = 5, /* ring full: bpf_ringbuf_reserve failed */
	BH_STAT_EVENTS_SUPPRESSED = 6, /* events disabled by config (benchmarks) */
	BH_STAT_FRAGMENTS = 7,
	BH_STAT_NO_ENDPOINT = 8,
	BH_STAT_XDP_QUARANTINE_DROPS = 9,
	BH_STAT_DENY_EVENTS_RATELIMITED = 10,
	BH_STAT_PREFILTER_DROPS = 11, /* dropped by the node's XDP prefilter (block list) */
	BH_STAT_EVENTS_RATELIMITED = 12, /* over its source's event budget; carried in that source's next event */
	BH_STAT_SAMPLES_SENT = 13,
	BH_STAT_SAMPLES_OVER_BUDGET = 14, /* skipped: the pod's sample budget was spent */
	BH_STAT_SAMPLES_LOST = 15,        /* skipped: ring full, or the bytes could not be read */
	BH_STAT_SAMPLES_DISABLED = 16,    /* skipped: sampling turned off by config */
	BH_STAT_DROP_REASON_BASE = 32, /* + bh_reason for reasons < 32 */
	BH_STAT_MAX = 64,
};

/* bh_endpoint.flags */
#define BH_EP_F_HAS_IPV4 (1U << 0)
#define BH_EP_F_HAS_IPV6 (1U << 1)
#define BH_EP_F_HAS_RANGES (1U << 2) /* bh_policy_ranges holds entries for this endpoint */

/* bh_endpoints: host-side ifindex -> the pod behind it. */
struct bh_endpoint {
	__u32 endpoint_id;
	__u32 identity;
	__u8 mode[2];     /* indexed by enum bh_direction */
	__u8 isolated[2]; /* 1 = a policy selects this pod for that direction */
	__u32 flags;
	__u8 ipv4[4];
	__u8 ipv6[16];
};

/* bh_ipcache: LPM trie. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d, prefixlen + 96). */
struct bh_ipcache_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct bh_ipcache_value {
	__u32 identity;
	__u32 flags;
};

/* bh_policy: exact and wildcard entries. port 0 = any port, protocol 0 = any protocol. */
struct bh_policy_key {
	__u32 endpoint_id;
	__u32 identity; /* BH_ID_ANY = any peer */
	__u8 direction;
	__u8 protocol;
	__u16 port; /* host byte order */
};

struct bh_policy_value {
	__u32 rule_id;
	__u8 action;
	__u8 _pad[3];
};

/* bh_policy_ranges: port ranges (endPort) per endpoint, peer, direction and protocol. */
#define BH_MAX_RANGES_PER_KEY 8

struct bh_range_key {
	__u32 endpoint_id;
	__u32 identity;
	__u8 direction;
	__u8 protocol;
	__u16 _pad;
};

struct bh_port_range {
	__u16 lo;
	__u16 hi;
	__u32 rule_id;
	__u8 action;
	__u8 _pad[3];
};

struct bh_range_value {
	__u32 count;
	struct bh_port_range ranges[BH_MAX_RANGES_PER_KEY];
};

/*
 * bh_conntrack: LRU. One entry per connection per enforcing endpoint, keyed
 * by the tuple of the connection's first packet as seen at that endpoint.
 * ICMP echo uses the echo identifier as both ports.
 */
struct bh_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 endpoint_id;
	__u8 direction;
	__u8 protocol;
	__u8 _pad[2];
};

/* Conntrack idle timeouts, seconds. The agent's sweep uses the same values. */
#define BH_CT_TCP_SYN_TIMEOUT_S 60
#define BH_CT_TCP_EST_TIMEOUT_S (6 * 3600)
#define BH_CT_CLOSED_TIMEOUT_S 10
#define BH_CT_UDP_TIMEOUT_S 60
#define BH_CT_ICMP_TIMEOUT_S 30

/* bh_ct_value.state bits */
#define BH_CT_F_FIN_FWD (1U << 0)
#define BH_CT_F_FIN_REV (1U << 1)
#define BH_CT_F_RST (1U << 2)
#define BH_CT_F_CLOSED (1U << 3) /* close event emitted; entry expires soon */
#define BH_CT_F_SEEN_REPLY (1U << 4)

/* bh_ct_value.sampled bits: that way's payload sample is taken (or skipped, counted). */
#define BH_CT_SAMPLED_FWD (1U << 0)
#define BH_CT_SAMPLED_REV (1U << 1)
#define BH_CT_SAMPLED_BOTH (BH_CT_SAMPLED_FWD | BH_CT_SAMPLED_REV)

struct bh_ct_value {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 last_report_ns;
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u32 rule_id;
	__u32 remote_identity;
	__u8 verdict;
	__u8 tcp_flags_fwd;
	__u8 tcp_flags_rev;
	__u8 state;
	__u16 reason;
	__u8 sampled; /* BH_CT_SAMPLED_*; set at creation for what is never sampled */
	__u8 _pad;
};

/* bh_fragments: verdict of a datagram's first fragment, for the fragments that follow. */
struct bh_frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u32 endpoint_id;
	__u8 direction;
	__u8 protocol;
	__u8 _pad[2];
};

struct bh_frag_value {
	__u8 verdict;
	__u8 _pad;
	__u16 reason;
	__u32 rule_id;
	__u16 sport;
	__u16 dport;
};

/* bh_quarantine: array indexed by endpoint_id; BH_Q_F_ACTIVE set means quarantined. */
#define BH_Q_F_ACTIVE (1U << 0)

struct bh_quarantine {
	__u64 since_ns;
	__u32 flags;
	__u32 _pad;
};

/* bh_config_v2: single-slot array the agent writes. */
#define BH_CFG_F_EVENTS_DISABLED (1U << 0)
#define BH_CFG_F_SAMPLES_DISABLED (1U << 1)

struct bh_config {
	__u32 flags;
	__u32 report_interval_s; /* periodic counter export; 0 = default 10 s */
	__u64 deny_event_interval_ns; /* per-tuple deny event rate limit; 0 = 1 s */
	__u32 events_per_source_s; /* flow events per initiating address per second; 0 = BH_EVENTS_PER_SOURCE */
	__u32 events_burst; /* events a quiet source may send at once; 0 = BH_EVENTS_BURST */
};

/*
 * bh_blocklist: the cluster-wide block list, keyed like bh_ipcache (IPv4 as
 * ::ffff:a.b.c.d). Only the block's id is stored: its expiry, reason and
 * author stay with the agent and the controller.
 */
struct bh_block_value {
	__u32 block_id;
	__u32 _pad;
};

/* bh_flows ring buffer record. Addresses follow the connection's original direction. */
struct bh_flow_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC */
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 ifindex;
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__u16 reason;
	__u8 type;
	__u8 verdict;
	__u8 direction;
	__u8 protocol;
	__u8 family; /* 4 or 6 */
	__u8 tcp_flags; /* union of flags seen, both ways */
	__u8 is_reply; /* the packet that produced the event was a reply */
	__u8 _pad[3];
	__u32 suppressed; /* events of the same initiating address suppressed since its previous one */
};

/*
 * A payload sample: a flow event of type BH_EV_SAMPLE (is_reply says which
 * way the bytes went) followed by the bytes. With tls_ext_at set, data holds
 * BH_SAMPLE_TLS_HEAD bytes from payload offset 0, then bytes from payload
 * offset tls_ext_at (a ClientHello's first extension).
 */
struct bh_sample_event {
	struct bh_flow_event flow;
	__u16 payload_len; /* the packet's whole L4 payload */
	__u16 captured;    /* bytes of data that hold payload */
	__u16 tls_ext_at;  /* 0: one window from offset 0 */
	__u16 _pad;
	__u8 data[BH_SAMPLE_BYTES];
};

/* bh_sample_budget: a pod's sample token bucket, credit in sample-nanoseconds. */
struct bh_token_bucket {
	__u64 last_ns;
	__u64 credit;
};

/* Layout pins, checked again from Rust (abi::tests). Change both or neither. */
_Static_assert(sizeof(struct bh_endpoint) == 36, "bh_endpoint layout");
_Static_assert(sizeof(struct bh_ipcache_key) == 20, "bh_ipcache_key layout");
_Static_assert(sizeof(struct bh_policy_key) == 12, "bh_policy_key layout");
_Static_assert(sizeof(struct bh_policy_value) == 8, "bh_policy_value layout");
_Static_assert(sizeof(struct bh_range_value) == 100, "bh_range_value layout");
_Static_assert(sizeof(struct bh_ct_key) == 44, "bh_ct_key layout");
_Static_assert(sizeof(struct bh_ct_value) == 72, "bh_ct_value layout");
_Static_assert(sizeof(struct bh_frag_key) == 44, "bh_frag_key layout");
_Static_assert(sizeof(struct bh_flow_event) == 112, "bh_flow_event layout");
_Static_assert(sizeof(struct bh_config) == 24, "bh_config layout");
_Static_assert(sizeof(struct bh_block_value) == 8, "bh_block_value layout");
_Static_assert(sizeof(struct bh_sample_event) == 248, "bh_sample_event layout");
_Static_assert(sizeof(struct bh_token_bucket) == 16, "bh_token_bucket layout");
_Static_assert(__builtin_offsetof(struct bh_sample_event, data) == 120, "bh_sample_event.data");
_Static_assert(__builtin_offsetof(struct bh_ct_value, sampled) == 70, "bh_ct_value.sampled");
_Static_assert(__builtin_offsetof(struct bh_flow_event, saddr) == 40, "bh_flow_event.saddr");
_Static_assert(__builtin_offsetof(struct bh_flow_event, sport) == 72, "bh_flow_event.sport");
_Static_assert(__builtin_offsetof(struct bh_flow_event, ifindex) == 76, "bh_flow_event.ifindex");
_Static_assert(__builtin_offsetof(struct bh_flow_event, rule_id) == 92, "bh_flow_event.rule_id");
_Static_assert(__builtin_offsetof(struct bh_flow_event, reason) == 96, "bh_flow_event.reason");
_Static_assert(__builtin_offsetof(struct bh_flow_event, is_reply) == 104, "bh_flow_event.is_reply");
_Static_assert(__builtin_offsetof(struct bh_flow_event, suppressed) == 108, "bh_flow_event.suppressed");
_Static_assert(__builtin_offsetof(struct bh_ct_value, rule_id) == 56, "bh_ct_value.rule_id");
_Static_assert(__builtin_offsetof(struct bh_endpoint, ipv6) == 20, "bh_endpoint.ipv6");

#endif /* BULKHEAD_ABI_H */
