// The emulated ECS site as the Alibaba Cloud provider is configured for it: region, zone, the
// production and drill networks, the worker instance and the emulator's endpoint. One place for
// what the provider's tests (options objects) and the recovery tests (dr.yaml) both write.
import type { EcsEmulator } from '../fakes/ecs-emulator.js';

export function emulatedSite(emu: EcsEmulator) {
  const n = emu.state.network;
  return {
    regionId: emu.state.regionId,
    zoneId: emu.state.zoneId,
    vSwitchId: n.vSwitchId,
    securityGroupId: n.securityGroupId,
    drillVSwitchId: n.drillVSwitchId,
    drillSecurityGroupId: n.drillSecurityGroupId,
    instanceType: 'ecs.g7.large',
    workerInstanceId: emu.state.workerInstanceId,
    endpoint: emu.endpoint,
    protocol: 'http' as const,
    // The emulated worker guest's /dev/disk/by-id, where attached disks show by serial.
    diskByIdDir: emu.byIdDir,
  };
}
