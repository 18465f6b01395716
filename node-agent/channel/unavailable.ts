// Why a guest's channel cannot serve a request, in words that tell the user what to do.
import { MAX_SESSIONS } from '../../contracts/guest-channel/frames.js';
import { ChannelUnavailable, type ChannelState } from './types.js';

/** The channel is not up now; undefined when it is. */
export function notUp(state: ChannelState): ChannelUnavailable | undefined {
  switch (state.phase) {
    case 'up':
      return undefined;
    case 'connecting':
      return new ChannelUnavailable(
        "the guest's control channel is not up yet: the guest may still be booting (try again in a few seconds)",
        'connecting',
      );
    case 'incompatible':
      return new ChannelUnavailable(
        `the guest's init and this agent speak no common control channel version (${state.reason}); ` +
          'recreate the Guest so that it boots the guest-init that comes with this agent',
        'incompatible',
      );
    case 'closed':
      return new ChannelUnavailable(
        `the guest's control channel is closed (${state.reason}); it stays closed for this domain: restart the Guest to get a new one`,
        'closed',
      );
  }
}

export function readyTimeout(timeoutMs: number): ChannelUnavailable {
  return new ChannelUnavailable(
    `the guest's control channel did not come up within ${seconds(timeoutMs)}: the guest may still be booting (try again), ` +
      'or its init predates the channel (recreate the Guest so that it boots the guest-init that comes with this agent)',
    'connecting',
  );
}

export function tooManySessions(): ChannelUnavailable {
  return new ChannelUnavailable(
    `the guest already has ${MAX_SESSIONS} exec sessions open, the most it may have: end one and try again`,
    'up',
  );
}

export function tooManyMetricsRequests(max: number): ChannelUnavailable {
  return new ChannelUnavailable(`the guest has not answered its last ${max} metrics requests yet: try again later`, 'up');
}

export function metricsTimeout(timeoutMs: number): ChannelUnavailable {
  return new ChannelUnavailable(
    `the guest did not answer a metrics request within ${seconds(timeoutMs)}: it may be overloaded; try again later`,
    'up',
  );
}

/** A request that was pending when the channel reset or closed. */
export function lostWith(state: ChannelState, why: string): ChannelUnavailable {
  return new ChannelUnavailable(why, state.phase);
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
