/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet parsing shared by TC and XDP. The parser is strict: anything it
 * cannot fully validate is reported as malformed, and an enforcing endpoint
 * drops it. It never guesses ports from a header it could not bound-check.
 */
#ifndef BH_LIB_PARSE_H
#define BH_LIB_PARSE_H

#include "common.h"

enum bh_parse_result {
	BH_PARSE_OK = 0,
	BH_PARSE_ARP = 1,
	BH_PARSE_UNSUPPORTED_L3 = 2,
	BH_PARSE_MALFORMED = 3,
};

enum bh_frag_kind {
	BH_FRAG_NONE = 0,
	BH_FRAG_FIRST = 1,
	BH_FRAG_LATER = 2,
};

#define BH_ICMP_ECHO_REPLY 0
#define BH_ICMP_ECHO_REQUEST 8
#define BH_ICMP6_ECHO_REQUEST 128
#define BH_ICMP6_ECHO_REPLY 129
#define BH_ICMP6_NDP_FIRST 133 /* router solicitation */
#define BH_ICMP6_NDP_LAST 137  /* redirect */

#define BH_IPV6_HOPOPTS 0
#define BH_IPV6_ROUTING 43
#define BH_IPV6_FRAGMENT 44
#define BH_IPV6_AH 51
#define BH_IPV6_NONE 59
#define BH_IPV6_DSTOPTS 60
#define BH_IPV6_MAX_EXT_HEADERS 6

struct bh_pkt {
	__u8 saddr[16]; /* IPv4 as ::ffff:a.b.c.d */
	__u8 daddr[16];
	__u16 sport; /* host order; ICMP echo: the identifier */
	__u16 dport;
	__u32 frag_id;
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 tcp_flags;
	__u8 frag; /* enum bh_frag_kind */
	__u8 icmp_type;
	__u8 sctp_chunk; /* SCTP: the first chunk's type (1 = INIT) */
	/* TCP and UDP: the L4 payload is [payload_off, payload_end) from the
	 * frame's start, by the IP lengths (never trailing padding); empty else. */
	__u16 payload_off;
	__u16 payload_end;
};

#define BH_TCP_FIN 0x01
#define BH_TCP_SYN 0x02
#define BH_TCP_RST 0x04
#define BH_TCP_ACK 0x10

static __always_inline void bh_map_v4(__u8 *dst, __be32 addr)
{
	__u64 *d = (__u64 *)dst;
	d[0] = 0;
	((__u32 *)dst)[2] = bpf_htonl(0x0000ffff);
	((__u32 *)dst)[3] = addr;
}

/* Reads ports (or the ICMP echo id) from the L4 header at l4, at l4_off
 * from the frame's start; l3_end is where the IP packet ends. */
static __always_inline int bh_parse_l4(struct bh_pkt *p, void *l4, void *end, __u32 l4_off, __u32 l3_end)
{
	switch (p->proto) {
	case BH_IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return BH_PARSE_MALFORMED;
		if (th->doff < 5)
			return BH_PARSE_MALFORMED;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		p->tcp_flags = ((__u8 *)th)[13];
		__u32 off = l4_off + th->doff * 4;
		if (off < l3_end && l3_end <= 0xffff) {
			p->payload_off = off;
			p->payload_end = l3_end;
		}
		return BH_PARSE_OK;
	}
	case BH_IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return BH_PARSE_MALFORMED;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
		if (l4_off + 8 < l3_end && l3_end <= 0xffff) {
			p->payload_off = l4_off + 8;
			p->payload_end = l3_end;
		}
		return BH_PARSE_OK;
	}
	case BH_IPPROTO_SCTP: {
		/* common header: source port, destination port, verification tag, checksum */
		__u16 *sh = l4;
		if ((void *)sh + 12 > end)
			return BH_PARSE_MALFORMED;
		p->sport = bpf_ntohs(sh[0]);
		p->dport = bpf_ntohs(sh[1]);
		__u8 *chunk = (__u8 *)l4 + 12;
		if ((void *)chunk + 1 <= end)
			p->sctp_chunk = chunk[0];
		return BH_PARSE_OK;
	}
	case BH_IPPROTO_ICMP:
	case BH_IPPROTO_ICMPV6: {
		__u8 *ic = l4;
		if ((void *)ic + 8 > end)
			return BH_PARSE_MALFORMED;
		p->icmp_type = ic[0];
		if ((p->proto == BH_IPPROTO_ICMP &&
		     (ic[0] == BH_ICMP_ECHO_REQUEST || ic[0] == BH_ICMP_ECHO_REPLY)) ||
		    (p->proto == BH_IPPROTO_ICMPV6 &&
		     (ic[0] == BH_ICMP6_ECHO_REQUEST || ic[0] == BH_ICMP6_ECHO_REPLY))) {
			__u16 id = bpf_ntohs(*(__u16 *)(ic + 4));
			p->sport = id;
			p->dport = id;
		}
		return BH_PARSE_OK;
	}
	default:
		return BH_PARSE_OK;
	}
}

static __always_inline int bh_parse_ipv4(struct bh_pkt *p, void *data, void *end, __u32 pkt_len)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > end)
		return BH_PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return BH_PARSE_MALFORMED;
	__u32 hdr_len = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hdr_len || tot_len + sizeof(struct ethhdr) > pkt_len)
		return BH_PARSE_MALFORMED;

	p->family = 4;
	p->proto = ip->protocol;
	bh_map_v4(p->saddr, ip->saddr);
	bh_map_v4(p->daddr, ip->daddr);

	__u16 frag_off = bpf_ntohs(ip->frag_off);
	__u16 offset = frag_off & 0x1fff;
	if (offset != 0) {
		/* RFC 1858: an offset of 8 bytes can rewrite the TCP flags of the first fragment. */
		if (offset == 1 && p->proto == BH_IPPROTO_TCP)
			return BH_PARSE_MALFORMED;
		p->frag = BH_FRAG_LATER;
		p->frag_id = bpf_ntohs(ip->id);
		return BH_PARSE_OK;
	}
	if (frag_off & 0x2000) {
		p->frag = BH_FRAG_FIRST;
		p->frag_id = bpf_ntohs(ip->id);
	}
	return bh_parse_l4(p, (void *)ip + hdr_len, end, sizeof(struct ethhdr) + hdr_len,
			   sizeof(struct ethhdr) + tot_len);
}

static __always_inline int bh_parse_ipv6(struct bh_pkt *p, void *data, void *end, __u32 pkt_len)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	if ((void *)(ip6 + 1) > end)
		return BH_PARSE_MALFORMED;
	if (ip6->version != 6)
		return BH_PARSE_MALFORMED;
	if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) + sizeof(struct ethhdr) > pkt_len)
		return BH_PARSE_MALFORMED;

	p->family = 6;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);

	__u8 next = ip6->nexthdr;
	void *cur = (void *)(ip6 + 1);

#pragma unroll
	for (int i = 0; i < BH_IPV6_MAX_EXT_HEADERS; i++) {
		if (next == BH_IPV6_HOPOPTS || next == BH_IPV6_ROUTING || next == BH_IPV6_DSTOPTS ||
		    next == BH_IPV6_AH) {
			__u8 *h = cur;
			if ((void *)(h + 2) > end)
				return BH_PARSE_MALFORMED;
			__u32 len = next == BH_IPV6_AH ? ((__u32)h[1] + 2) * 4 : ((__u32)h[1] + 1) * 8;
			next = h[0];
			cur += len;
			continue;
		}
		if (next == BH_IPV6_FRAGMENT) {
			__u8 *h = cur;
			if ((void *)(h + 8) > end)
				return BH_PARSE_MALFORMED;
			__u16 fo = bpf_ntohs(*(__u16 *)(h + 2));
			next = h[0];
			p->frag_id = bpf_ntohl(*(__u32 *)(h + 4));
			if ((fo & 0xfff8) != 0) {
				p->proto = next;
				p->frag = BH_FRAG_LATER;
				return BH_PARSE_OK;
			}
			if (fo & 1)
				p->frag = BH_FRAG_FIRST;
			cur += 8;
			continue;
		}
		break;
	}
	/* Still an extension header after the limit: refuse rather than guess. */
	if (next == BH_IPV6_HOPOPTS || next == BH_IPV6_ROUTING || next == BH_IPV6_DSTOPTS ||
	    next == BH_IPV6_AH || next == BH_IPV6_FRAGMENT)
		return BH_PARSE_MALFORMED;
	p->proto = next;
	if (next == BH_IPV6_NONE)
		return BH_PARSE_OK;
	return bh_parse_l4(p, cur, end, cur - data,
			   sizeof(struct ethhdr) + sizeof(*ip6) + bpf_ntohs(ip6->payload_len));
}

/* Parses an Ethernet frame in [data, end); pkt_len is the full frame length. */
static __always_inline int bh_parse(struct bh_pkt *p, void *data, void *end, __u32 pkt_len)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return BH_PARSE_MALFORMED;
	__u16 proto = bpf_ntohs(eth->h_proto);
	if (proto == ETH_P_IP)
		return bh_parse_ipv4(p, data, end, pkt_len);
	if (proto == ETH_P_IPV6)
		return bh_parse_ipv6(p, data, end, pkt_len);
	if (proto == BH_ETH_P_ARP)
		return BH_PARSE_ARP;
	return BH_PARSE_UNSUPPORTED_L3;
}

#endif
