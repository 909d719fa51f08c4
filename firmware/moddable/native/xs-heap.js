/*
 * Module "gridlet/xs-heap" (see xs-heap.c).
 */

export function stats() @ "xs_gridlet_xs_heap_stats";
