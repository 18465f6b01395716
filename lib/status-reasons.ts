// Kubernetes' StatusReason for each HTTP code its API answers with (apimachinery's metav1.StatusReason):
// what krata-api writes, what kubectl krata prints for a body-less refusal, and a metric label.

export const STATUS_REASONS: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};
