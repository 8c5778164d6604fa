"""Lambda entry points: parse the event, call ``flowcraft_core``, shape the response.

``worker.handler`` (SQS batch), ``reconciler.handler`` (EventBridge schedule) and ``api.handler``
(API Gateway REST proxy). ``config`` holds what a container builds once. Nothing here decides
workflow semantics; that lives in ``flowcraft_core``.
"""
