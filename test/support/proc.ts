/** What Linux's /proc tells about a live process: memory and CPU, for tests and benchmarks. */
import { readFileSync } from 'node:fs';

/** A size field of /proc/<pid>/status (VmRSS, VmHWM: peak RSS, ...) in MiB; NaN when the process or the field is gone. */
export function procStatusMiB(pid: number | undefined, field: string): number {
  if (pid === undefined) return Number.NaN;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
}
