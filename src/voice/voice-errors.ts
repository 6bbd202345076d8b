import { ApiError } from '../common/problem';

export function voiceNotFound(): ApiError {
  return new ApiError(404, 'voice_not_found', 'No such voice');
}

export function pendingLimit(max: number): ApiError {
  return new ApiError(
    429,
    'user_pending_limit',
    `At most ${max} voices may wait for a slot per user`,
  );
}
