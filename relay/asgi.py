class RelayApp:
    async def __call__(self, scope, receive, send):
        raise NotImplementedError
