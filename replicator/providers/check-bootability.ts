/** Inspects a recovered system disk offline (read-only) for what would stop it booting on ECS. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DiskLayout, readDiskLayout } from './disk-layout.js';
import { debugfsMissing, ExtReader } from './ext-reader.js';
import { initramfsFiles } from './initramfs-files.js';

export interface BootProblem {
  /** blocking: the instance would not boot (or not be reachable); warning: it may, with trouble. */
  severity: 'blocking' | 'warning';
  /** One line: what was found, where. */
  problem: string;
  remedy: string;
}

export interface BootReport {
  problems: BootProblem[];
  /** What was looked at, for the record: table, file systems, kernels. */
  checked: string[];
}

export interface BootCheckOptions {
  /** The ECS instance type it will run on: decides whether NVMe drivers are needed. */
  instanceType: string;
  /** The boot mode the image is registered with (CreateImage BootMode). */
  bootMode?: string;
  debugfs?: string;
}

/**
 * Whether an instance type attaches disks over NVMe: 8th-generation families and the 7th
 * generation's `se` variants do; 7th-generation families otherwise may (see `nvmeMaybe`).
 */
export function nvmeFamily(instanceType: string): { required: boolean; maybe: boolean } {
  const m = /^ecs\.([a-z]+?)(\d+)([a-z]*)\./.exec(instanceType);
  const generation = m ? Number(m[2]) : 0;
  const suffix = m?.[3] ?? '';
  return {
    required: generation >= 8 || (generation === 7 && suffix.includes('se')),
    maybe: generation >= 7,
  };
}

const NON_ECS_DEVICE = /^\/dev\/(sd[a-z]+|xvd[a-z]+|hd[a-z]+)\d*$/;
const ORDER_DEPENDENT = /^\/dev\/(vd[a-z]+|nvme\d+n\d+)(p?\d+)?$/;

/** Problems with fstab lines that name devices rather than UUID=, LABEL= or stable links. */
export function fstabProblems(fstab: string): BootProblem[] {
  const out: BootProblem[] = [];
  for (const [i, raw] of fstab.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [spec = '', mount = '', type = '', opts = ''] = line.split(/\s+/);
    const where = `/etc/fstab line ${i + 1} (${spec} on ${mount})`;
    const remedy = `mount it by UUID= or LABEL= (blkid shows them) on the source, so the next point carries the fix`;
    const fatal = type !== 'swap' && (mount === '/' || !opts.split(',').includes('nofail'));
    if (NON_ECS_DEVICE.test(spec)) {
      out.push({
        severity: fatal ? 'blocking' : 'warning',
        problem: `${where} names a device that does not exist on ECS (disks are /dev/vd* or /dev/nvme*)`,
        remedy,
      });
    } else if (ORDER_DEPENDENT.test(spec)) {
      out.push({
        severity: 'warning',
        problem: `${where} names a device by its order of attachment, which can change on ECS`,
        remedy,
      });
    }
  }
  return out;
}

/** Static addresses in the common network configurations, which would keep the source's address. */
async function networkProblems(fs: ExtReader, cloudInit: boolean): Promise<BootProblem[]> {
  const out: BootProblem[] = [];
  const remedy = cloudInit
    ? 'let cloud-init write the network configuration (remove the static file), or use DHCP'
    : 'use DHCP on the primary interface (ECS assigns the address), or install cloud-init';
  for (const e of (await fs.list('/etc/netplan')) ?? []) {
    if (e.dir || !/\.ya?ml$/.test(e.name) || e.name.includes('cloud-init')) continue;
    const text = (await fs.text(`/etc/netplan/${e.name}`)) ?? '';
    const addr = /addresses:\s*\[?\s*["']?(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(text);
    if (addr && !/dhcp4:\s*(true|yes)/.test(text)) {
      out.push({
        severity: 'warning',
        problem: `/etc/netplan/${e.name} sets the static address ${addr[1]}: on ECS the instance gets another one`,
        remedy,
      });
    }
  }
  const interfaces = await fs.text('/etc/network/interfaces');
  for (const m of (interfaces ?? '').matchAll(/^\s*iface\s+(\S+)\s+inet\s+static/gm)) {
    if (m[1] === 'lo') continue;
    out.push({
      severity: 'warning',
      problem: `/etc/network/interfaces gives ${m[1]} a static address: on ECS the instance gets another one`,
      remedy,
    });
  }
  for (const e of (await fs.list('/etc/sysconfig/network-scripts')) ?? []) {
    if (!e.name.startsWith('ifcfg-') || e.name === 'ifcfg-lo') continue;
    const text = (await fs.text(`/etc/sysconfig/network-scripts/${e.name}`)) ?? '';
    if (/^\s*BOOTPROTO=["']?(static|none)/m.test(text) && /^\s*IPADDR=/m.test(text)) {
      out.push({
        severity: 'warning',
        problem: `/etc/sysconfig/network-scripts/${e.name} sets a static address: on ECS the instance gets another one`,
        remedy,
      });
    }
  }
  if ((await fs.list('/etc/udev/rules.d'))?.some((e) => e.name === '70-persistent-net.rules')) {
    out.push({
      severity: 'warning',
      problem:
        '/etc/udev/rules.d/70-persistent-net.rules pins interface names to the source MAC addresses',
      remedy: 'remove the file on the source; the ECS interface would otherwise not be eth0',
    });
  }
  return out;
}

interface Kernel {
  version: string;
  fs: ExtReader;
  dir: string;
}

/** Kernels with their initramfs, from a root file system's /boot or a separate boot partition. */
async function kernels(readers: ExtReader[]): Promise<Kernel[]> {
  const out: Kernel[] = [];
  for (const fs of readers) {
    for (const dir of ['/boot', '/']) {
      for (const e of (await fs.list(dir)) ?? []) {
        const m = /^vmlinuz-(.+)$/.exec(e.name);
        if (m?.[1] && !out.some((k) => k.version === m[1])) out.push({ version: m[1], fs, dir });
      }
    }
  }
  return out;
}

const path = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

/** Whether a driver is built into the kernel (its config or modules.builtin say so). */
async function builtIn(k: Kernel, root: ExtReader, config: string, module: string) {
  const cfg = await k.fs.text(path(k.dir, `config-${k.version}`));
  if (cfg && new RegExp(`^${config}=y$`, 'm').test(cfg)) return true;
  const list = await root.text(`/lib/modules/${k.version}/modules.builtin`);
  return list !== undefined && new RegExp(`/${module}\\.ko$`, 'm').test(list);
}

async function driverProblems(
  k: Kernel,
  root: ExtReader,
  o: BootCheckOptions,
  work: string,
): Promise<BootProblem[]> {
  const out: BootProblem[] = [];
  const names = [
    `initrd.img-${k.version}`,
    `initramfs-${k.version}.img`,
    `initrd-${k.version}`,
    `initramfs-${k.version}`,
  ];
  let files: string[] | undefined;
  let unreadable: string | undefined;
  for (const name of names) {
    const to = join(work, name);
    if (await k.fs.dump(path(k.dir, name), to)) {
      const r = await initramfsFiles(to);
      files = r.names;
      unreadable = r.unreadable;
      break;
    }
  }
  const has = (module: string) =>
    files?.some((f) => new RegExp(`/${module}\\.ko(\\.(xz|zst|gz))?$`).test(f)) ?? false;
  const nvme = nvmeFamily(o.instanceType);
  const needs: { config: string; module: string; label: string; need: 'blocking' | 'warning' }[] = [
    { config: 'CONFIG_VIRTIO_BLK', module: 'virtio_blk', label: 'virtio block', need: 'blocking' },
  ];
  if (nvme.maybe) {
    needs.push({
      config: 'CONFIG_BLK_DEV_NVME',
      module: 'nvme',
      label: 'NVMe',
      need: nvme.required ? 'blocking' : 'warning',
    });
  }
  for (const n of needs) {
    if (has(n.module) || (await builtIn(k, root, n.config, n.module))) continue;
    const rebuild = `add ${n.module} to the initramfs on the source (dracut --add-drivers ${n.module} -f, or list it in /etc/initramfs-tools/modules and run update-initramfs -u)`;
    if (files === undefined) {
      out.push({
        severity: n.need,
        problem: `kernel ${k.version} has no initramfs and ${n.label} (${n.module}) is not built in: it cannot find its root disk on ${o.instanceType}`,
        remedy: rebuild,
      });
    } else if (unreadable !== undefined && !has(n.module)) {
      out.push({
        severity: 'warning',
        problem: `the initramfs of kernel ${k.version} could not be read completely (${unreadable}): ${n.label} drivers not confirmed`,
        remedy: `check on the source that ${n.module} is in the initramfs (lsinitramfs or lsinitrd)`,
      });
    } else {
      out.push({
        severity: n.need,
        problem: `the initramfs of kernel ${k.version} lacks the ${n.label} driver (${n.module}) that ${o.instanceType} needs to find its disks`,
        remedy: rebuild,
      });
    }
  }
  return out;
}

/** Mismatch between how the image boots and how it will be registered. */
function bootModeProblems(layout: DiskLayout, bootMode: string | undefined): BootProblem[] {
  if (layout.table !== 'gpt' || bootMode === undefined) return [];
  if (layout.efi && !layout.bios && bootMode === 'BIOS') {
    return [
      {
        severity: 'blocking',
        problem:
          'the disk boots by UEFI only (an EFI system partition, no BIOS boot partition) but the image is set to BIOS',
        remedy: 'set bootMode: UEFI in the app’s provider block in dr.yaml',
      },
    ];
  }
  if (!layout.efi && bootMode === 'UEFI') {
    return [
      {
        severity: 'blocking',
        problem: 'the disk has no EFI system partition but the image is set to UEFI',
        remedy: 'set bootMode: BIOS in the app’s provider block in dr.yaml',
      },
    ];
  }
  return [];
}

/**
 * Looks at a raw system disk image the way ECS will boot it, without mounting or changing it:
 * partition table and file systems, fstab lines naming devices, virtio (and NVMe) drivers in the
 * initramfs or built in, cloud-init and static network settings. Only ext2/3/4 file systems
 * are read (through debugfs); others are reported as not checked.
 */
export async function checkBootability(image: string, o: BootCheckOptions): Promise<BootReport> {
  const problems: BootProblem[] = [];
  const checked: string[] = [];
  const layout = await readDiskLayout(image);
  checked.push(
    `${layout.table === 'none' ? 'no partition table' : `${layout.table} partition table`}: ${layout.partitions.map((p) => `${p.number || 'disk'}=${p.fs}`).join(', ')}`,
  );
  problems.push(...bootModeProblems(layout, o.bootMode));
  const missing = await debugfsMissing(o.debugfs);
  if (missing) {
    problems.push({
      severity: 'warning',
      problem: `the file systems could not be inspected: ${missing}`,
      remedy: 'install e2fsprogs on the worker (apt-get install e2fsprogs)',
    });
    return { problems, checked };
  }
  const readers = layout.partitions
    .filter((p) => p.fs === 'ext')
    .map((p) => new ExtReader(image, p.offset, o.debugfs));
  const others = layout.partitions.filter((p) => ['xfs', 'btrfs', 'lvm'].includes(p.fs));
  for (const p of others) {
    problems.push({
      severity: 'warning',
      problem: `partition ${p.number || '(whole disk)'} holds ${p.fs}, which this check cannot read: fstab, drivers and network on it were not checked`,
      remedy: 'check them on the source: fstab by UUID, virtio/NVMe drivers in the initramfs, DHCP',
    });
  }
  let root: ExtReader | undefined;
  let fstab: string | undefined;
  for (const r of readers) {
    fstab = await r.text('/etc/fstab');
    if (fstab !== undefined) {
      root = r;
      break;
    }
  }
  if (!root) {
    if (others.length === 0) {
      problems.push({
        severity: 'blocking',
        problem:
          'no root file system found on the system disk (no ext file system with /etc/fstab)',
        remedy: 'make the first volume of the app the disk the server boots from',
      });
    }
    return { problems, checked };
  }
  problems.push(...fstabProblems(fstab ?? ''));
  const work = await mkdtemp(join(tmpdir(), 'lifeboat-bootcheck-'));
  try {
    const found = await kernels(readers);
    checked.push(`kernels: ${found.map((k) => k.version).join(', ') || 'none'}`);
    if (found.length === 0) {
      problems.push({
        severity: 'warning',
        problem: 'no kernel (vmlinuz-*) found in /boot: its drivers were not checked',
        remedy: 'check on the source that /boot is on the first volume or on a partition of it',
      });
    }
    // The newest kernel is the one the boot loader starts by default.
    const newest = found.sort((a, b) =>
      b.version.localeCompare(a.version, undefined, { numeric: true }),
    )[0];
    if (newest) problems.push(...(await driverProblems(newest, root, o, work)));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const cloud = await root.list('/etc/cloud');
  const cloudInit = cloud?.some((e) => e.name === 'cloud.cfg') ?? false;
  checked.push(`cloud-init: ${cloudInit ? 'installed' : 'absent'}`);
  if (cloud?.some((e) => e.name === 'cloud-init.disabled')) {
    problems.push({
      severity: 'warning',
      problem:
        'cloud-init is disabled (/etc/cloud/cloud-init.disabled): the ECS instance keeps the source’s hostname, keys and network',
      remedy: 'remove /etc/cloud/cloud-init.disabled on the source',
    });
  }
  problems.push(...(await networkProblems(root, cloudInit)));
  return { problems, checked };
}

/** One line per problem, for a drill result or a refusal. */
export function describeProblem(p: BootProblem): string {
  return `${p.problem}. To resolve, ${p.remedy}`;
}
