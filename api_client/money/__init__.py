"""api_client/money"""
