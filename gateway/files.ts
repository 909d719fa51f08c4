// The gateway's files hold secrets (its identity keys, every device's session key in the store):
// its data directory is the owner's alone (0700) and so is each file in it (0600), whatever the umask
// and whatever an older gridlet left behind.

import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';

/** Makes `dir` (and missing parents) readable by the owner only; tightens it if it exists with wider rights. */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  tighten(dir, 0o700);
}

/** Makes `file` exist (empty when new) with rights 0600; tightens an existing one. */
export function privateFile(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  tighten(file, 0o600);
}

/** Tightens an existing file's rights to at most `mode`; nothing when it is missing. */
export function tighten(path: string, mode: number): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    return;
  }
  if ((st.mode & 0o777 & ~mode) !== 0) chmodSync(path, st.mode & 0o777 & mode);
}
