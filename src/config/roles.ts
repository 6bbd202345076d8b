import type { AppConfig, Role } from './app-config';

export function hasRole(config: Pick<AppConfig, 'roles'>, role: Role): boolean {
  return config.roles.has(role);
}
