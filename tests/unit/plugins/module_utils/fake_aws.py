"""A stand-in for a retrying boto3 client: answers or errors per method, records every call."""
import botocore.exceptions


def client_error(code, operation='Operation', message='refused'):
    return botocore.exceptions.ClientError({'Error': {'Code': code, 'Message': message}}, operation)


class FakePaginator:
    def __init__(self, client, method):
        self.client, self.method = client, method

    def paginate(self, **params):
        self.client.calls.append((self.method, params))
        answer = self.client.answers[self.method]
        if isinstance(answer, Exception):
            raise answer
        pages = answer(params) if callable(answer) else answer
        return _Pages(pages)


class _Pages:
    def __init__(self, pages):
        self.pages = pages

    def build_full_result(self):
        merged = {}
        for page in self.pages:
            for key, value in page.items():
                merged.setdefault(key, []).extend(value)
        return merged


class FakeClient:
    """`answers` maps a method name to a response, an exception to raise, or a function of the
    call's parameters; for a paginated method, to the list of pages."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def get_paginator(self, method):
        return FakePaginator(self, method)

    def __getattr__(self, method):
        if method not in self.answers:
            raise AttributeError(method)

        def call(aws_retry=False, **params):
            assert aws_retry, '%s called without aws_retry' % method
            self.calls.append((method, params))
            answer = self.answers[method]
            if isinstance(answer, Exception):
                raise answer
            return answer(params) if callable(answer) else answer

        return call
