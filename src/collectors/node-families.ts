// Node families that two collectors fill: node-status from /nodes/{node}/status for the answering
// node, node-metrics from /cluster/metrics/export for every node. One name, one meaning: both
// endpoints report the same quantity from the same source (pvestatd / procfs of that node), in
// the same unit, labelled by id="node/<name>" like the reference's node series. When both run in
// one scrape, the scrape keeps one series per node (scrape.ts mergeSameName).
import { gauge } from '../exposition/family.ts';

export const NODE_LOAD1 = gauge('pve_node_load1', 'Node load average over 1 minute', ['id']);
export const NODE_LOAD5 = gauge('pve_node_load5', 'Node load average over 5 minutes', ['id']);
export const NODE_LOAD15 = gauge('pve_node_load15', 'Node load average over 15 minutes', ['id']);
export const NODE_IOWAIT = gauge('pve_node_cpu_iowait_ratio', 'Share of CPU time the node spent waiting for I/O (0..1)', ['id']);
export const NODE_SWAP_SIZE = gauge('pve_node_swap_size_bytes', 'Swap space of the node', ['id']);
export const NODE_SWAP_USED = gauge('pve_node_swap_used_bytes', 'Swap space in use on the node', ['id']);
export const NODE_ROOTFS_SIZE = gauge('pve_node_rootfs_size_bytes', 'Size of the node\'s root filesystem', ['id']);
export const NODE_ROOTFS_USED = gauge('pve_node_rootfs_used_bytes', 'Used space of the node\'s root filesystem', ['id']);

/** Families both endpoints fill, in output order. */
export const SHARED_NODE_FAMILIES = [NODE_LOAD1, NODE_LOAD5, NODE_LOAD15, NODE_IOWAIT, NODE_SWAP_SIZE, NODE_SWAP_USED, NODE_ROOTFS_SIZE, NODE_ROOTFS_USED];
