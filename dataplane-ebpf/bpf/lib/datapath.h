/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TC datapath shared by both directions. Order of checks:
 *   endpoint -> quarantine -> parse -> anti-spoof -> fragments -> conntrack
 *   -> block list -> policy.
 * Quarantine comes before conntrack so it cuts established connections too.
 * The block list is read only where conntrack has no answer (a new
 * connection, a non-first fragment, an untracked packet), so established
 * traffic pays nothing for it; the agent removes the conntrack entries a new
 * block covers, which sends their next packet down this path.
 * Payload samples cost established traffic one test of ct->sampled, in a
 * cache line the conntrack path reads anyway: each way of a connection the
 * pod serves is sampled (or skipped, counted) once, then never looked at.
 */
#ifndef BH_LIB_DATAPATH_H
#define BH_LIB_DATAPATH_H

#include "common.h"
#include "maps.h"
#include "stats.h"
#include "parse.h"
#include "identity.h"
#include "policy.h"
#include "conntrack.h"
#include "flow.h"
#include "sample.h"

#define BH_REPORT_INTERVAL_DEFAULT_S 10

struct bh_verdict_out {
	__u32 rule_id;
	__u16 reason;
	__u8 verdict;
	__u8 _pad;
};

static __always_inline int bh_finish(__u8 verdict, __u16 reason)
{
	if (verdict == BH_VERDICT_DROPPED) {
		bh_stat_drop(reason);
		return BH_TC_DROP;
	}
	bh_stat_inc(verdict == BH_VERDICT_AUDIT ? BH_STAT_PKTS_AUDIT : BH_STAT_PKTS_FORWARDED);
	return BH_TC_PASS;
}

/*
 * Drops a packet that never reached policy (quarantine, malformed, spoofed),
 * with a rate-limited event. `orig` is the connection's original direction
 * when known (a reply), else the packet's own. A packet the pod sent is
 * charged to the pod's endpoint, whatever source it claims: spoofing many
 * sources buys no fresh event budgets.
 */
static __always_inline int bh_drop_early(const struct bh_endpoint *ep, const struct bh_pkt *p, __u32 ifindex,
					 __u8 dir, __u16 reason, __u64 now, const struct bh_ct_key *orig)
{
	struct bh_ct_key tuple = {};
	if (orig)
		tuple = *orig;
	else
		bh_ct_key_fwd(&tuple, p, ep->endpoint_id, dir);
	if (bh_deny_event_due(&tuple, now)) {
		/* The pod's own budget, keyed ::<endpoint id> (the IPv4-compatible
		 * form, which no source address in these maps takes). */
		__u32 own[4] = { 0, 0, 0, ep->endpoint_id };
		struct bh_event_ctx ev = {
			.tuple = &tuple,
			.charge = dir == BH_DIR_EGRESS ? (const __u8 *)own : 0,
			.ifindex = ifindex,
			.local_identity = ep->identity,
			.remote_identity = BH_ID_UNKNOWN,
			.reason = reason,
			.type = BH_EV_DENIED,
			.verdict = BH_VERDICT_DROPPED,
			.family = p->family,
			.tcp_flags = p->tcp_flags,
		};
		bh_emit(&ev);
	}
	return bh_finish(BH_VERDICT_DROPPED, reason);
}

/* In learn and audit mode a problem is reported but forwarded; only enforce drops. */
static __always_inline int bh_problem(const struct bh_endpoint *ep, const struct bh_pkt *p, __u32 ifindex,
				      __u8 dir, __u16 reason, __u64 now)
{
	if (ep->mode[dir & 1] == BH_MODE_ENFORCE)
		return bh_drop_early(ep, p, ifindex, dir, reason, now, 0);
	return bh_finish(BH_VERDICT_AUDIT, reason);
}

static __always_inline int bh_source_is_own(const struct bh_endpoint *ep, const struct bh_pkt *p)
{
	if (p->family == 4) {
		if (!(ep->flags & BH_EP_F_HAS_IPV4))
			return 1;
		return *(__u32 *)&p->saddr[12] == *(__u32 *)ep->ipv4;
	}
	/* Link-local and unspecified sources are needed for neighbour discovery and DAD. */
	if (p->saddr[0] == 0xfe && (p->saddr[1] & 0xc0) == 0x80)
		return 1;
	if (*(__u64 *)&p->saddr[0] == 0 && *(__u64 *)&p->saddr[8] == 0)
		return 1;
	if (!(ep->flags & BH_EP_F_HAS_IPV6))
		return 1;
	return bh_addr_eq(p->saddr, ep->ipv6);
}

/* ARP from a pod must carry the pod's own IPv4 as sender protocol address. */
static __always_inline int bh_arp_is_own(const struct bh_endpoint *ep, void *data, void *data_end)
{
	if (!(ep->flags & BH_EP_F_HAS_IPV4))
		return 1;
	/* ethernet (14) + htype, ptype, hlen, plen, oper (8) + sender MAC (6) = sender IP at 28 */
	__u8 *spa = data + 28;
	if ((void *)(spa + 4) > data_end)
		return 0;
	/* 0.0.0.0 is an RFC 5227 address probe, which claims nothing */
	return *(__u32 *)spa == *(__u32 *)ep->ipv4 || *(__u32 *)spa == 0;
}

/*
 * Neighbour discovery from a pod: solicitations are fine; advertisements must
 * be for the pod's own address; router advertisements and redirects are
 * never a pod's to send.
 */
static __always_inline int bh_ndp_from_pod_ok(const struct bh_endpoint *ep, const struct bh_pkt *p, void *data,
					      void *data_end)
{
	if (p->icmp_type == 134 || p->icmp_type == 137)
		return 0;
	if (p->icmp_type != 136 || !(ep->flags & BH_EP_F_HAS_IPV6))
		return 1;
	/* target address follows the 8-byte ICMPv6 header; only plain IPv6 headers carry NDP */
	__u8 *target = data + sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + 8;
	if ((void *)(target + 16) > data_end)
		return 0;
	if (target[0] == 0xfe && (target[1] & 0xc0) == 0x80)
		return 1;
	return bh_addr_eq(target, ep->ipv6);
}

static __always_inline void bh_frag_key_of(struct bh_frag_key *k, const struct bh_pkt *p, __u32 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->id = p->frag_id;
	k->endpoint_id = ep;
	k->direction = dir;
	k->protocol = p->proto;
}

static __always_inline void bh_frag_remember(const struct bh_pkt *p, __u32 ep, __u8 dir, __u8 verdict,
					     __u16 reason, __u32 rule_id)
{
	if (p->frag != BH_FRAG_FIRST)
		return;
	struct bh_frag_key k = {};
	bh_frag_key_of(&k, p, ep, dir);
	struct bh_frag_value v = {
		.verdict = verdict,
		.reason = reason,
		.rule_id = rule_id,
		.sport = p->sport,
		.dport = p->dport,
	};
	bpf_map_update_elem(&bh_fragments, &k, &v, BPF_ANY);
}

/* Emits the periodic counter export at most once per interval per connection. */
static __always_inline int bh_report_due(struct bh_ct_value *ct, __u64 now)
{
	struct bh_config *cfg = bh_get_config();
	__u64 interval = (cfg && cfg->report_interval_s ? cfg->report_interval_s : BH_REPORT_INTERVAL_DEFAULT_S) *
			 BH_NS_PER_SEC;
	__u64 last = ct->last_report_ns;
	if (now - last < interval)
		return 0;
	return __sync_val_compare_and_swap(&ct->last_report_ns, last, now) == last;
}

/*
 * TC entry point for both directions. Headers are read in place. Only when a
 * header does not fit in the linear part of the skb is it pulled in: the pull
 * makes a cloned skb (every TCP transmit) writable, which copies it, so doing
 * it up front on every packet would cost more than the whole policy decision.
 */
static __always_inline int bh_handle(struct __sk_buff *skb, __u8 dir)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 pkt_len = skb->len;
	__u32 ifindex = skb->ifindex;
	struct bh_endpoint *ep = bpf_map_lookup_elem(&bh_endpoints, &ifindex);
	if (!ep) {
		bh_stat_inc(BH_STAT_NO_ENDPOINT);
		return BH_TC_PASS;
	}
	/* Coarse time (jiffies) is plenty for timeouts and rate limits and much cheaper. */
	__u64 now = bpf_ktime_get_coarse_ns();
	__u32 eid = ep->endpoint_id;
	__u8 mode = ep->mode[dir & 1];

	struct bh_pkt p = {};
	int parsed = bh_parse(&p, data, data_end, pkt_len);
	if (parsed == BH_PARSE_MALFORMED && pkt_len > (__u32)(data_end - data)) {
		bpf_skb_pull_data(skb, pkt_len < 256 ? pkt_len : 256);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&p, 0, sizeof(p));
		parsed = bh_parse(&p, data, data_end, pkt_len);
	}

	if (bh_quarantined(eid))
		return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_QUARANTINE, now, 0);

	if (parsed == BH_PARSE_ARP) {
		/* A pod may only announce its own IPv4 address: no ARP poisoning. */
		if (dir == BH_DIR_EGRESS && !bh_arp_is_own(ep, data, data_end))
			return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_SPOOFED_SOURCE, now, 0);
		return bh_finish(BH_VERDICT_FORWARDED, BH_REASON_NONE);
	}
	if (parsed == BH_PARSE_UNSUPPORTED_L3)
		return bh_problem(ep, &p, ifindex, dir, BH_REASON_UNSUPPORTED_L3, now);
	if (parsed != BH_PARSE_OK)
		return bh_problem(ep, &p, ifindex, dir, BH_REASON_MALFORMED, now);

	/*
	 * Spoofed sources drop in every mode: the check protects the other pods,
	 * whose ingress policy trusts the source address, not this one.
	 */
	if (dir == BH_DIR_EGRESS && !bh_source_is_own(ep, &p))
		return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_SPOOFED_SOURCE, now, 0);

	if (p.proto == BH_IPPROTO_ICMPV6 && p.frag == BH_FRAG_NONE && p.icmp_type >= BH_ICMP6_NDP_FIRST &&
	    p.icmp_type <= BH_ICMP6_NDP_LAST) {
		if (dir == BH_DIR_EGRESS && !bh_ndp_from_pod_ok(ep, &p, data, data_end))
			return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_SPOOFED_SOURCE, now, 0);
		return bh_finish(BH_VERDICT_FORWARDED, BH_REASON_NEIGHBOR_DISCOVERY);
	}

	if (p.frag == BH_FRAG_LATER) {
		bh_stat_inc(BH_STAT_FRAGMENTS);
		/* A later fragment carries both addresses: blocked whatever its first fragment did. */
		if (bh_blocked(p.saddr) || bh_blocked(p.daddr))
			return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_BLOCKED, now, 0);
		struct bh_frag_key fk = {};
		bh_frag_key_of(&fk, &p, eid, dir);
		struct bh_frag_value *fv = bpf_map_lookup_elem(&bh_fragments, &fk);
		if (!fv) {
			if (mode == BH_MODE_ENFORCE)
				return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_FRAG_UNKNOWN, now, 0);
			return bh_finish(mode == BH_MODE_AUDIT ? BH_VERDICT_AUDIT : BH_VERDICT_FORWARDED,
					 BH_REASON_FRAG_UNKNOWN);
		}
		if (fv->verdict == BH_VERDICT_DROPPED)
			return bh_finish(BH_VERDICT_DROPPED, BH_REASON_FRAG_DENIED);
		return bh_finish(fv->verdict, BH_REASON_FRAG_FOLLOWS_FIRST);
	}
	if (p.frag == BH_FRAG_FIRST)
		bh_stat_inc(BH_STAT_FRAGMENTS);

	int track = bh_ct_trackable(&p);
	struct bh_ct_key key = {};
	if (track) {
		bh_ct_key_fwd(&key, &p, eid, dir);
		struct bh_ct_value *ct = bpf_map_lookup_elem(&bh_conntrack, &key);
		int reply = 0;
		if (!ct) {
			struct bh_ct_key rkey = {};
			bh_ct_key_rev(&rkey, &p, eid, dir);
			ct = bpf_map_lookup_elem(&bh_conntrack, &rkey);
			if (ct) {
				reply = 1;
				key = rkey;
			}
		}
		/*
		 * A stale entry, a fresh SYN on a closed tuple, or an SCTP INIT on
		 * any tuple, either way (an INIT is never a reply), is a new
		 * connection: decide again, in the packet's own direction.
		 */
		if (ct && !bh_ct_expired(ct, p.proto, now) &&
		    !((!reply && (ct->state & BH_CT_F_CLOSED) && bh_tcp_is_syn(&p)) || bh_sctp_is_init(&p))) {
			/*
			 * Admitted in learn or audit mode, and the endpoint enforces now:
			 * decide the connection again, as its first packet would be.
			 */
			if ((ct->verdict != BH_VERDICT_FORWARDED || ct->reason == BH_REASON_LEARN_MODE) &&
			    ep->mode[key.direction & 1] == BH_MODE_ENFORCE) {
				struct bh_decision d =
					bh_policy_decide(ep, ct->remote_identity, key.direction, key.protocol, key.dport);
				if (!d.allowed) {
					bpf_map_delete_elem(&bh_conntrack, &key);
					return bh_drop_early(ep, &p, ifindex, dir, d.reason, now, &key);
				}
				ct->verdict = BH_VERDICT_FORWARDED;
				ct->rule_id = d.rule_id;
				ct->reason = d.reason;
			}
			int closed = bh_ct_account(ct, &p, pkt_len, reply, now);
			/* The first payload each way of a connection the pod serves, once. */
			__u8 way = reply ? BH_CT_SAMPLED_REV : BH_CT_SAMPLED_FWD;
			if (!(ct->sampled & way) && p.payload_end > p.payload_off) {
				ct->sampled |= way;
				if (key.direction == BH_DIR_INGRESS) {
					bh_sample_packet(skb, &key, ep, &p, ifindex, ct->remote_identity, ct->rule_id,
							 ct->reason, ct->verdict, reply, now);
				}
			}
			if (closed || bh_report_due(ct, now)) {
				struct bh_event_ctx ev = {
					.tuple = &key,
					.ct = ct,
					.ifindex = ifindex,
					.local_identity = ep->identity,
					.remote_identity = ct->remote_identity,
					.rule_id = ct->rule_id,
					.reason = ct->reason,
					.type = closed ? BH_EV_CLOSED : BH_EV_COUNTERS,
					.verdict = ct->verdict,
					.family = p.family,
					.is_reply = reply,
				};
				bh_emit(&ev);
			}
			bh_frag_remember(&p, eid, dir, ct->verdict, BH_REASON_ESTABLISHED, ct->rule_id);
			return bh_finish(ct->verdict, BH_REASON_ESTABLISHED);
		}
		if (reply)
			bh_ct_key_fwd(&key, &p, eid, dir);
	} else {
		bh_ct_key_fwd(&key, &p, eid, dir);
	}

	/* Blocked both ways and in every mode, before policy can allow it. */
	if (bh_blocked(p.saddr) || bh_blocked(p.daddr)) {
		bh_frag_remember(&p, eid, dir, BH_VERDICT_DROPPED, BH_REASON_BLOCKED, 0);
		return bh_drop_early(ep, &p, ifindex, dir, BH_REASON_BLOCKED, now, 0);
	}

	/* First packet of a connection (or an untracked packet): decide. */
	__u32 remote_id = bh_identity_of(dir == BH_DIR_EGRESS ? p.daddr : p.saddr);
	__u8 verdict;
	__u16 reason;
	__u32 rule_id = 0;
	if (mode == BH_MODE_LEARN) {
		verdict = BH_VERDICT_FORWARDED;
		reason = BH_REASON_LEARN_MODE;
	} else {
		struct bh_decision d = bh_policy_decide(ep, remote_id, dir, p.proto, p.dport);
		rule_id = d.rule_id;
		reason = d.reason;
		if (d.allowed)
			verdict = BH_VERDICT_FORWARDED;
		else if (mode == BH_MODE_AUDIT)
			verdict = BH_VERDICT_AUDIT;
		else
			verdict = BH_VERDICT_DROPPED;
	}
	bh_frag_remember(&p, eid, dir, verdict, reason, rule_id);

	struct bh_event_ctx ev = {
		.tuple = &key,
		.ifindex = ifindex,
		.local_identity = ep->identity,
		.remote_identity = remote_id,
		.rule_id = rule_id,
		.reason = reason,
		.type = BH_EV_NEW,
		.verdict = verdict,
		.family = p.family,
		.tcp_flags = p.tcp_flags,
	};

	if (verdict == BH_VERDICT_DROPPED) {
		if (bh_deny_event_due(&key, now)) {
			ev.type = BH_EV_DENIED;
			bh_emit(&ev);
		}
		return bh_finish(verdict, reason);
	}

	if (track) {
		struct bh_ct_value nct = {
			.created_ns = now,
			.last_seen_ns = now,
			.last_report_ns = now,
			.packets_fwd = 1,
			.bytes_fwd = pkt_len,
			.rule_id = rule_id,
			.remote_identity = remote_id,
			.verdict = verdict,
			.tcp_flags_fwd = p.tcp_flags,
			.reason = reason,
			/* Only what the pod serves is sampled: egress connections never are. */
			.sampled = dir == BH_DIR_INGRESS ? 0 : BH_CT_SAMPLED_BOTH,
		};
		/* A first packet with payload (UDP, TCP Fast Open) is its way's sample. */
		int sample = dir == BH_DIR_INGRESS && p.payload_end > p.payload_off;
		if (sample)
			nct.sampled = BH_CT_SAMPLED_FWD;
		bpf_map_update_elem(&bh_conntrack, &key, &nct, BPF_ANY);
		bh_stat_inc(BH_STAT_CT_NEW);
		ev.ct = &nct;
		bh_emit(&ev);
		if (sample) {
			bh_sample_packet(skb, &key, ep, &p, ifindex, remote_id, rule_id, reason, verdict, 0, now);
		}
	} else if (bh_deny_event_due(&key, now)) {
		/* Untracked forwarded packets (ICMP errors, other protocols): rate-limited like denials. */
		bh_emit(&ev);
	}
	return bh_finish(verdict, reason);
}

#endif
