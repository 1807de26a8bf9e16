/**
 * The protocol's types under their old module name, for the readers that import them from here;
 * the one definition is the zod schemas in protocol.ts.
 */
export type {
  AgentPoint,
  AgentVolumeState,
  AppStatus,
  BatchAck,
  CommitRequest,
  ConsistencyLabel,
  HeartbeatRequest,
  HeartbeatResponse as HeartbeatAnswer,
  LinkState,
  Phase,
  PointDetail,
  PointInfo,
  PointRecord,
  PointVolumeInfo,
  ProtectionState,
  ResyncState,
  SessionRequest,
  SessionResponse,
  ThrottleState,
  TrackerState,
  VolumeInfo,
  VolumeProposal,
  VolumeStatus,
  WriteCost,
} from './protocol.js';
