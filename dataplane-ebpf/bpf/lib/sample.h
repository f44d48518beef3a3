/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Payload samples, for type identification: the first bytes of the first
 * payload each way of a connection a pod serves, at most BH_SAMPLE_BYTES, in
 * a BH_EV_SAMPLE record. Bounded per pod by a token bucket; every sample not
 * sent (sampling off, the pod's budget spent, ring full) is counted.
 *
 * bh_sample is a global function, verified once on its own rather than at
 * every path that reaches it: inlined, it more than doubled tc_to_pod's
 * verification time, which every agent start pays.
 */
#ifndef BH_LIB_SAMPLE_H
#define BH_LIB_SAMPLE_H

#include "flow.h"

/* What a sample needs, handed over in a per-CPU scratch slot: on the
 * caller's stack it would overflow the 512 bytes both frames share. */
struct bh_sample_req {
	struct bh_ct_key tuple; /* the connection's original direction */
	__u64 now;              /* coarse: for the budget only */
	__u32 ifindex;
	__u32 local_identity;
	__u32 remote_identity;
	__u32 rule_id;
	__u16 reason;
	__u16 payload_off;
	__u16 payload_end;
	__u8 verdict;
	__u8 family;
	__u8 is_reply;
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bh_sample_req);
} bh_sample_scratch SEC(".maps");

/*
 * For a TLS ClientHello (record 0x16 0x03 xx, handshake type 1): the payload
 * offset of its first extension, past the random, session id, cipher suites,
 * compression methods and the extensions' length; 0 when it is not one or the
 * offset is not within the packet. head holds the payload's first bytes.
 */
static __always_inline __u32 bh_tls_ext_at(struct __sk_buff *skb, __u32 off, __u32 len, const __u8 *head)
{
	if (head[0] != 0x16 || head[1] != 0x03 || head[5] != 0x01)
		return 0;
	/* record (5) + handshake header (4) + version (2) + random (32) = 43: session id length */
	__u32 pos = 44 + head[43];
	__u8 b[2];
	if (bpf_skb_load_bytes(skb, off + pos, b, 2))
		return 0;
	pos += 2 + (((__u32)b[0] << 8) | b[1]);
	if (pos > 4096 || bpf_skb_load_bytes(skb, off + pos, b, 1))
		return 0;
	pos += 1 + b[0] + 2;
	return pos < len ? pos : 0;
}

/* Whether the pod's sample bucket pays for one more; counts it when not. */
static __always_inline int bh_sample_budget_take(__u32 endpoint_id, __u64 now)
{
	struct bh_token_bucket *b = bpf_map_lookup_elem(&bh_sample_budget, &endpoint_id);
	if (!b) {
		bh_stat_inc(BH_STAT_SAMPLES_OVER_BUDGET);
		return 0;
	}
	__u64 credit = bh_bucket_refill(b->credit, b->last_ns, now, BH_SAMPLES_PER_ENDPOINT,
					(__u64)BH_SAMPLES_BURST * BH_NS_PER_SEC);
	b->last_ns = now;
	if (credit < BH_NS_PER_SEC) {
		b->credit = credit;
		bh_stat_inc(BH_STAT_SAMPLES_OVER_BUDGET);
		return 0;
	}
	b->credit = credit - BH_NS_PER_SEC;
	return 1;
}

/*
 * Emits one sample. The caller marks that way sampled first, whatever
 * happens here, so each way is tried once and never again on the next packet.
 */
__noinline int bh_sample(struct __sk_buff *skb)
{
	__u32 zero = 0;
	const struct bh_sample_req *r = bpf_map_lookup_elem(&bh_sample_scratch, &zero);
	if (!skb || !r)
		return 0;
	struct bh_config *cfg = bh_get_config();
	if (cfg && (cfg->flags & BH_CFG_F_SAMPLES_DISABLED)) {
		bh_stat_inc(BH_STAT_SAMPLES_DISABLED);
		return 0;
	}
	if (!bh_sample_budget_take(r->tuple.endpoint_id, r->now))
		return 0;
	struct bh_sample_event *ev = bpf_ringbuf_reserve(&bh_flows, sizeof(*ev), 0);
	if (!ev) {
		bh_stat_inc(BH_STAT_SAMPLES_LOST);
		return 0;
	}
	struct bh_event_ctx c = {
		.tuple = &r->tuple,
		.ifindex = r->ifindex,
		.local_identity = r->local_identity,
		.remote_identity = r->remote_identity,
		.rule_id = r->rule_id,
		.reason = r->reason,
		.type = BH_EV_SAMPLE,
		.verdict = r->verdict,
		.family = r->family,
		.is_reply = r->is_reply,
	};
	bh_fill_event(&ev->flow, &c, bpf_ktime_get_ns());
	ev->flow.suppressed = 0;
	__u32 off = r->payload_off;
	__u32 len = r->payload_end > off ? r->payload_end - off : 0;
	ev->payload_len = len;
	ev->tls_ext_at = 0;
	ev->_pad = 0;
	/* 64-bit, and opaque to clang after the clamp, so the register the
	 * verifier sees checked is the one passed to the helper. */
	__u64 n = len;
	if (n > BH_SAMPLE_BYTES)
		n = BH_SAMPLE_BYTES;
	asm volatile("" : "+r"(n));
	if (n < 1 || bpf_skb_load_bytes(skb, off, ev->data, n))
		goto lost;
	ev->captured = n;
	if (n == BH_SAMPLE_BYTES && !r->is_reply) {
		__u32 at = bh_tls_ext_at(skb, off, len, ev->data);
		__u64 m = len - at;
		if (m > BH_SAMPLE_BYTES - BH_SAMPLE_TLS_HEAD)
			m = BH_SAMPLE_BYTES - BH_SAMPLE_TLS_HEAD;
		asm volatile("" : "+r"(m));
		if (at && m >= 1 && !bpf_skb_load_bytes(skb, off + at, ev->data + BH_SAMPLE_TLS_HEAD, m)) {
			ev->tls_ext_at = at;
			ev->captured = BH_SAMPLE_TLS_HEAD + m;
		}
	}
	bpf_ringbuf_submit(ev, 0);
	bh_stat_inc(BH_STAT_SAMPLES_SENT);
	return 1;
lost:
	bpf_ringbuf_discard(ev, 0);
	bh_stat_inc(BH_STAT_SAMPLES_LOST);
	return 0;
}

/* Samples a packet of connection `tuple` seen at endpoint `ep`. */
static __always_inline void bh_sample_packet(struct __sk_buff *skb, const struct bh_ct_key *tuple,
					     const struct bh_endpoint *ep, const struct bh_pkt *p, __u32 ifindex,
					     __u32 remote_identity, __u32 rule_id, __u16 reason, __u8 verdict,
					     __u8 is_reply, __u64 now)
{
	__u32 zero = 0;
	struct bh_sample_req *r = bpf_map_lookup_elem(&bh_sample_scratch, &zero);
	if (!r)
		return;
	r->tuple = *tuple;
	r->now = now;
	r->ifindex = ifindex;
	r->local_identity = ep->identity;
	r->remote_identity = remote_identity;
	r->rule_id = rule_id;
	r->reason = reason;
	r->payload_off = p->payload_off;
	r->payload_end = p->payload_end;
	r->verdict = verdict;
	r->family = p->family;
	r->is_reply = is_reply;
	bh_sample(skb);
}

#endif
