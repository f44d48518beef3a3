/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TC ingress on the pod's host-side interface: traffic FROM the pod.
 * This is where the pod's EGRESS policy is enforced.
 */
#include "lib/datapath.h"

SEC("classifier")
int bh_tc_from_pod(struct __sk_buff *skb)
{
	if (skb->data_end - skb->data < 128 && skb->len > skb->data_end - skb->data)
		bpf_skb_pull_data(skb, skb->len < 128 ? skb->len : 128);
	return bh_handle((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, skb->ifindex,
			 BH_DIR_EGRESS);
}

char _license[] SEC("license") = "GPL";
