/*
 * Module "gridlet/ota" (see ota.c).
 */

export function info() @ "xs_gridlet_ota_info";
export function write(offset, bytes) @ "xs_gridlet_ota_write";
export function read(offset, length) @ "xs_gridlet_ota_read";
export function setPending() @ "xs_gridlet_ota_set_pending";
export function confirm() @ "xs_gridlet_ota_confirm";
export function rollback() @ "xs_gridlet_ota_rollback";
export function restart() @ "xs_gridlet_ota_restart";
