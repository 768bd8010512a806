// The few fields of a guest config (/nodes/{node}/{qemu|lxc}/{vmid}/config) the exporter keeps
// in its config cache: onboot for the reference's pve_onboot_status, the sizing, protection,
// agent and creation time for the guest-config collector (and the agent flag for collectors
// that ask the guest agent). Only keys set in the file are present in a config; PVE's
// defaults are filled in by the collectors that need them, not here.
import type { GuestConfig, GuestType } from './types.ts';

export interface GuestConfigFields {
  /** onboot, undefined when the key is absent (the reference emits nothing then). */
  readonly onboot: number | undefined;
  readonly cores: number | undefined;
  /** QEMU only. */
  readonly sockets: number | undefined;
  /** Configured memory, MiB ("8192", "current=8192" or 8192). */
  readonly memoryMiB: number | undefined;
  /** QEMU balloon target minimum, MiB; 0 = balloon device off. */
  readonly balloonMiB: number | undefined;
  readonly protection: number | undefined;
  /** QEMU guest agent enabled in the config ("1", "enabled=1", "1,fstrim_cloned_disks=1"). */
  readonly agent: boolean;
  /** QEMU creation time from meta "creation-qemu=9.0.2,ctime=1718012345", Unix seconds. */
  readonly createdAt: number | undefined;
}

function num(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** A property string's value: "current=8192" -> "8192", "8192" -> "8192". */
function propertyValue(v: unknown, key: string): unknown {
  if (typeof v !== 'string' || !v.includes('=')) return v;
  for (const part of v.split(',')) {
    const [k, val] = part.split('=', 2);
    if (k.trim() === key) return val;
  }
  return undefined;
}

export function agentEnabled(v: unknown): boolean {
  if (typeof v === 'number') return v === 1;
  if (typeof v !== 'string') return false;
  const first = v.split(',')[0].trim();
  if (first === '1') return true;
  for (const part of v.split(',')) {
    const [k, val] = part.split('=', 2);
    if (k.trim() === 'enabled') return val?.trim() === '1';
  }
  return false;
}

function ctimeOf(meta: unknown): number | undefined {
  if (typeof meta !== 'string') return undefined;
  return num(propertyValue(meta, 'ctime'));
}

export function guestConfigFields(type: GuestType, cfg: GuestConfig): GuestConfigFields {
  return {
    onboot: cfg.onboot === undefined ? undefined : Number(cfg.onboot),
    cores: num(cfg.cores),
    sockets: type === 'qemu' ? num(cfg.sockets) : undefined,
    memoryMiB: num(propertyValue(cfg.memory, 'current')),
    balloonMiB: type === 'qemu' ? num(cfg.balloon) : undefined,
    protection: num(cfg.protection),
    agent: type === 'qemu' && agentEnabled(cfg.agent),
    createdAt: type === 'qemu' ? ctimeOf(cfg.meta) : undefined,
  };
}
