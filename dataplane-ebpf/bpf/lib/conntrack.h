/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking. Entries are per endpoint and direction, so a
 * connection between two pods on one node is tracked (and policed) at both
 * ends independently. Replies are found by the reversed tuple.
 */
#ifndef BH_LIB_CONNTRACK_H
#define BH_LIB_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#define BH_CT_TCP_SYN_TIMEOUT (BH_CT_TCP_SYN_TIMEOUT_S * BH_NS_PER_SEC)
#define BH_CT_TCP_EST_TIMEOUT (BH_CT_TCP_EST_TIMEOUT_S * BH_NS_PER_SEC)
#define BH_CT_CLOSED_TIMEOUT (BH_CT_CLOSED_TIMEOUT_S * BH_NS_PER_SEC)
#define BH_CT_UDP_TIMEOUT (BH_CT_UDP_TIMEOUT_S * BH_NS_PER_SEC)
#define BH_CT_ICMP_TIMEOUT (BH_CT_ICMP_TIMEOUT_S * BH_NS_PER_SEC)

/* Protocols whose packets are tracked as connections. ICMP errors and unknown protocols are not. */
static __always_inline int bh_ct_trackable(const struct bh_pkt *p)
{
	if (p->proto == BH_IPPROTO_TCP || p->proto == BH_IPPROTO_UDP || p->proto == BH_IPPROTO_SCTP)
		return 1;
	if (p->proto == BH_IPPROTO_ICMP)
		return p->icmp_type == BH_ICMP_ECHO_REQUEST || p->icmp_type == BH_ICMP_ECHO_REPLY;
	if (p->proto == BH_IPPROTO_ICMPV6)
		return p->icmp_type == BH_ICMP6_ECHO_REQUEST || p->icmp_type == BH_ICMP6_ECHO_REPLY;
	return 0;
}

static __always_inline __u64 bh_ct_timeout(const struct bh_ct_value *ct, __u8 proto)
{
	if (ct->state & BH_CT_F_CLOSED)
		return BH_CT_CLOSED_TIMEOUT;
	if (proto == BH_IPPROTO_TCP)
		return (ct->state & BH_CT_F_SEEN_REPLY) ? BH_CT_TCP_EST_TIMEOUT : BH_CT_TCP_SYN_TIMEOUT;
	if (proto == BH_IPPROTO_ICMP || proto == BH_IPPROTO_ICMPV6)
		return BH_CT_ICMP_TIMEOUT;
	return BH_CT_UDP_TIMEOUT;
}

static __always_inline int bh_ct_expired(const struct bh_ct_value *ct, __u8 proto, __u64 now)
{
	return now > ct->last_seen_ns && now - ct->last_seen_ns > bh_ct_timeout(ct, proto);
}

static __always_inline void bh_ct_key_fwd(struct bh_ct_key *k, const struct bh_pkt *p, __u32 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	k->endpoint_id = ep;
	k->direction = dir;
	k->protocol = p->proto;
}

/* The key the connection was created under if this packet is a reply to it. */
static __always_inline void bh_ct_key_rev(struct bh_ct_key *k, const struct bh_pkt *p, __u32 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, p->daddr, 16);
	__builtin_memcpy(k->daddr, p->saddr, 16);
	k->sport = p->dport;
	k->dport = p->sport;
	k->endpoint_id = ep;
	k->direction = dir ^ 1;
	k->protocol = p->proto;
}

/* An SCTP INIT (verification tag 0 on the wire) always asks for a new
 * association, even on a tuple that had one: never an established packet. */
#define BH_SCTP_CHUNK_INIT 1
static __always_inline int bh_sctp_is_init(const struct bh_pkt *p)
{
	return p->proto == BH_IPPROTO_SCTP && p->sctp_chunk == BH_SCTP_CHUNK_INIT;
}

/* A TCP packet that may open a connection: SYN without ACK. */
static __always_inline int bh_tcp_is_syn(const struct bh_pkt *p)
{
	return p->proto == BH_IPPROTO_TCP && (p->tcp_flags & (BH_TCP_SYN | BH_TCP_ACK)) == BH_TCP_SYN;
}

/*
 * Accounts one packet on an existing entry. Returns 1 when this packet closed
 * the connection (RST, or the second FIN), so the caller emits the close event.
 */
static __always_inline int bh_ct_account(struct bh_ct_value *ct, const struct bh_pkt *p, __u32 len,
					 int reply, __u64 now)
{
	/* Avoid dirtying the shared cache line on every packet: refresh at most every 100 ms. */
	if (now - ct->last_seen_ns > BH_NS_PER_SEC / 10)
		ct->last_seen_ns = now;
	if (reply) {
		__sync_fetch_and_add(&ct->packets_rev, 1);
		__sync_fetch_and_add(&ct->bytes_rev, len);
		if (!(ct->state & BH_CT_F_SEEN_REPLY))
			ct->state |= BH_CT_F_SEEN_REPLY;
	} else {
		__sync_fetch_and_add(&ct->packets_fwd, 1);
		__sync_fetch_and_add(&ct->bytes_fwd, len);
	}
	if (p->proto != BH_IPPROTO_TCP)
		return 0;
	if (reply) {
		if ((ct->tcp_flags_rev | p->tcp_flags) != ct->tcp_flags_rev)
			ct->tcp_flags_rev |= p->tcp_flags;
	} else if ((ct->tcp_flags_fwd | p->tcp_flags) != ct->tcp_flags_fwd) {
		ct->tcp_flags_fwd |= p->tcp_flags;
	}
	if (ct->state & BH_CT_F_CLOSED)
		return 0;
	__u8 state = ct->state;
	if (p->tcp_flags & BH_TCP_RST)
		state |= BH_CT_F_RST;
	if (p->tcp_flags & BH_TCP_FIN)
		state |= reply ? BH_CT_F_FIN_REV : BH_CT_F_FIN_FWD;
	if ((state & BH_CT_F_RST) || ((state & BH_CT_F_FIN_FWD) && (state & BH_CT_F_FIN_REV))) {
		state |= BH_CT_F_CLOSED;
		ct->state = state;
		return 1;
	}
	ct->state = state;
	return 0;
}

#endif
