/*
 * Module "gridlet/random" (see random.c).
 */

export function fill(buffer) @ "xs_gridlet_random_fill";
export function entropy(on) @ "xs_gridlet_random_entropy";
