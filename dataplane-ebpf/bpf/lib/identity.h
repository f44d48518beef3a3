/* SPDX-License-Identifier: Apache-2.0 */
/* IP -> security identity through the ipcache LPM trie. */
#ifndef BH_LIB_IDENTITY_H
#define BH_LIB_IDENTITY_H

#include "maps.h"

/* Longest-prefix match; an address the agent never heard of is "world". */
static __always_inline __u32 bh_identity_of(const __u8 *addr)
{
	struct bh_ipcache_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, addr, 16);
	struct bh_ipcache_value *v = bpf_map_lookup_elem(&bh_ipcache, &key);
	return v ? v->identity : BH_ID_WORLD;
}

#endif
