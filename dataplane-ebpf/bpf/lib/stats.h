/* SPDX-License-Identifier: Apache-2.0 */
/* Per-CPU counters: no atomics on the hot path, summed by the agent. */
#ifndef BH_LIB_STATS_H
#define BH_LIB_STATS_H

#include "maps.h"

static __always_inline void bh_stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&bh_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline void bh_stat_drop(__u16 reason)
{
	bh_stat_inc(BH_STAT_PKTS_DROPPED);
	if (reason < BH_STAT_MAX - BH_STAT_DROP_REASON_BASE)
		bh_stat_inc(BH_STAT_DROP_REASON_BASE + reason);
}

static __always_inline struct bh_config *bh_get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&bh_config_v2, &zero);
}

#endif
